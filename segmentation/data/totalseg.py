"""TotalSegmentatorDataModule: whole-body CT from the TotalSegmentator dataset (v1 or v2), in its own layout.

The layout and class names are `layouts.totalseg`'s. `classes` picks what to train: a list of
class names or a group name (see `layouts.totalseg_classes.GROUPS`). The chosen masks are merged
into one label map per case, **class i of the chosen list -> label value i** (1-based, 0 =
background; where masks overlap, the later class wins), and cached as NIfTI so the many small
mask files are read once, not every epoch.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence, Union

import nibabel as nib
import numpy as np
from monai import transforms as mt
from typing_extensions import override

from ..core.errors import SegError
from ..core.fingerprint import settings_key
from ..core.locking import exclusive
from ..core.log import log
from ..core.storage import write_text_atomically
from .base import VolumeDataModule
from .layouts.totalseg import (
    IMAGE_NAME,
    MASK_FOLDER,
    META_NAME,
    detect_version,
    find_case_ids,
    read_official_split,
    resolve_classes,
)
from .nifti import load_nifti, save_nifti
from .split import DataSplit, train_val_split

MERGE_FORMAT = 1  # bump when the merge itself changes, so older caches are not reused


def merge_key(version: str, classes: Sequence[str]) -> str:
    """The short hash naming the merged-label cache of one (version, ordered class list, merge format)."""
    return settings_key({"format": MERGE_FORMAT, "version": version, "classes": list(classes)})


def merged_label_map(case: dict, classes: Sequence[str]) -> nib.Nifti1Image:
    """One case's label map: voxels of the mask of `classes[i]` get value i + 1, all others 0."""
    ct = load_nifti(case["image"])
    label = np.zeros(ct.shape, dtype=np.uint8)
    for value, name in enumerate(classes, start=1):
        path = Path(case["masks"][name])
        if not path.is_file():
            raise SegError(f"{path} is missing: every case of a TotalSegmentator folder has a mask per class")
        mask = np.asanyarray(load_nifti(path).dataobj)
        if mask.shape != ct.shape:
            raise SegError(f"{path} has shape {mask.shape}, but its {IMAGE_NAME} has {ct.shape}")
        label[mask > 0] = value
    return nib.Nifti1Image(label, ct.affine)


def is_fresh(merged: Path, sources: Sequence[str]) -> bool:
    """Whether `merged` exists and is newer than every one of its source masks."""
    if not merged.is_file():
        return False
    built = merged.stat().st_mtime_ns
    return all(os.stat(source).st_mtime_ns <= built for source in sources)


class TotalSegmentatorDataModule(VolumeDataModule):
    """The TotalSegmentator CT dataset (v1 or v2), training the chosen classes as one label map.

    Class i of the chosen list is label value i (1-based, 0 = background); `class_names` is
    the chosen list. The merged label maps are cached in `<cache_dir or root/.seg_cache>/
    totalseg_<hash of version and class list>/<case>.nii.gz`, built in `setup` for the cases
    whose merge is missing or older than its masks. The split is meta.csv's (train/val rows)
    when it has validation cases and no `fold` is set, else the base's deterministic split or
    fold; meta.csv's test cases are the test split of `seg test`, never trained on.

    Args:
        root: the dataset folder (`s0000/ct.nii.gz`, `s0000/segmentations/`, `meta.csv`).
        classes: a list of class names, one class name, or a group: `all`, `organs`, `vertebrae`,
            `ribs`, `cardiac`, `muscles` (see `layouts.totalseg_classes.GROUPS`).
        ct_window: HU range clipped and scaled to [0, 1].
        **kwargs: see `VolumeDataModule`.
    """

    dataset_name = "totalseg"
    multilabel = False

    def __init__(
        self,
        root: str,
        classes: Union[list[str], str] = "organs",
        ct_window: Sequence[float] = (-1000.0, 1000.0),
        **kwargs,
    ):
        super().__init__(root, **kwargs)
        first_case = find_case_ids(self.root)[0]
        self.version = detect_version(self.root / first_case / MASK_FOLDER)
        self.classes = resolve_classes(classes, self.version)
        self.merge_dir = self.cache_folder() / f"totalseg_{merge_key(self.version, self.classes)}"

    @property
    @override
    def channel_names(self) -> list[str]:
        """One CT channel."""
        return ["CT"]

    @property
    @override
    def class_names(self) -> list[str]:
        """The chosen classes, in label-value order (label i + 1 is `class_names[i]`)."""
        return list(self.classes)

    @override
    def label_values(self) -> set[int]:
        """0 (background) to the number of chosen classes."""
        return set(range(len(self.classes) + 1))

    @override
    def list_cases(self) -> list[dict]:
        """Every case: id, CT path, merged label path (built by `setup`) and its chosen classes' mask paths."""
        cases = []
        for case in find_case_ids(self.root):
            folder = self.root / case
            masks = {name: str(folder / MASK_FOLDER / f"{name}.nii.gz") for name in self.classes}
            label = str(self.merge_dir / f"{case}.nii.gz")
            cases.append({"case": case, "image": str(folder / IMAGE_NAME), "label": label, "masks": masks})
        return cases

    @override
    def intensity_transform(self) -> mt.Transform:
        """The CT window (`ct_window`, HU) clipped and scaled to [0, 1]."""
        low, high = self.hparams.ct_window
        return mt.ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)

    @override
    def prepare_sources(self) -> None:
        """Merge the label maps that are missing or stale."""
        self.merge_labels(self.list_cases())

    @override
    def prepare_data(self) -> None:
        """Merge the label maps that are missing or stale, then the base's (the store) (Lightning runs this once,
        before `setup` on any rank)."""
        self.prepare_sources()
        super().prepare_data()

    @override
    def setup(self, stage: Optional[str] = None) -> None:
        """Merge the label maps that are still missing or stale, then check, split and build the datasets."""
        self.merge_labels(self.list_cases())
        super().setup(stage)

    @override
    def check_report(self, cases: list[dict]):
        """The base's check; a merged label map that does not load is rebuilt (with a warning) and checked again."""
        report = super().check_report(cases)
        broken = [case for case in cases if any(problem.file == case["label"] and "unreadable" in problem.message
                                                for problem in report.problems)]
        if not broken:
            return report
        log.warning(f"rebuilding {len(broken)} merged label map(s) that do not load: "
                      f"{', '.join(case['label'] for case in broken[:5])}")
        for case in broken:
            Path(case["label"]).unlink(missing_ok=True)
        self.merge_labels(broken)
        return super().check_report(cases)

    def merge_labels(self, cases: list[dict]) -> None:
        """Write the merged label map of every case in `cases` whose cached one is missing or stale."""
        try:
            self.merge_dir.mkdir(parents=True, exist_ok=True)
            self._write_manifest()
        except OSError as err:
            raise SegError(
                f"cannot write the merged labels to {self.merge_dir} ({err}); set --data.cache_dir"
            ) from None
        with exclusive(self.merge_dir.with_name(f".{self.merge_dir.name}.lock")):  # one process at a time
            todo = [case for case in cases if not is_fresh(Path(case["label"]), list(case["masks"].values()))]
            if not todo:
                return
            log.info(f"seg: merging {len(self.classes)} TotalSegmentator masks of {len(todo)} cases into "
                           f"{self.merge_dir}")
            # decompression releases the GIL, so threads merge cases in parallel
            with ThreadPoolExecutor(max(1, self.hparams.num_workers)) as pool:
                list(pool.map(self._merge_case, todo))

    def _merge_case(self, case: dict) -> None:
        save_nifti(merged_label_map(case, self.classes), Path(case["label"]))

    def _write_manifest(self) -> None:
        # for people browsing the cache: what the hashed folder name stands for
        manifest = self.merge_dir / "classes.json"
        text = json.dumps({"version": self.version, "classes": self.classes}, indent=1)
        if not manifest.is_file() or manifest.read_text() != text:
            write_text_atomically(manifest, text)

    @override
    def split(self, case_ids: list[str]) -> DataSplit:
        """meta.csv's test cases are the test split; its train and val cases the rest (the base's split, or
        `fold`, of the non-test cases when meta.csv has no val cases or a fold is set).

        Without meta.csv test rows, `--data.test_fraction` carves the test cases as in every dataset.
        """
        official = read_official_split(self.root / META_NAME)
        test = sorted(case for case in case_ids if official.get(case) == "test")
        if not test:
            return super().split(case_ids)
        usable = [case for case in case_ids if official.get(case) != "test"]
        val = [case for case in usable if official.get(case) == "val"]
        source = f"{META_NAME} test"
        if not val or self.hparams.fold is not None:
            base = train_val_split(usable, self.hparams)
            return DataSplit(base.train, base.val, test, source)
        unlisted = [case for case in usable if case not in official]
        if unlisted:
            log.warning(
                f"{len(unlisted)} cases in {self.root} are not in {META_NAME} and are left out "
                f"(e.g. {', '.join(unlisted[:3])})",
            )
        return DataSplit(sorted(case for case in usable if official.get(case) == "train"), sorted(val), test, source)
