"""TotalSegmentatorDataModule: whole-body CT from the TotalSegmentator dataset (v1 or v2), in its own layout.

Layout (as downloaded from Zenodo)::

    <root>/meta.csv                           semicolon-separated; columns image_id and split (train/val/test)
    <root>/s0000/ct.nii.gz
    <root>/s0000/segmentations/<class>.nii.gz  one binary mask per class: 117 files (v2) or 104 (v1)

The version is detected from the mask file names. `classes` picks what to train: a list of
class names or a group name (see `totalseg_classes.GROUPS`). The chosen masks are merged into
one label map per case, **class i of the chosen list -> label value i** (1-based, 0 = background;
where masks overlap, the later class wins), and cached as NIfTI so the many small mask files
are read once, not every epoch.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence, Union

import nibabel as nib
import numpy as np
from lightning.pytorch.utilities import rank_zero_info
from monai import transforms as mt

from ..errors import SegError
from .base import VolumeDataModule, missing_root, synth_hint
from .totalseg_classes import CLASSES, CLASSES_V1, CLASSES_V2, GROUPS, group_classes

__all__ = [
    "CLASSES_V1", "CLASSES_V2", "GROUPS", "TotalSegmentatorDataModule",
    "detect_version", "find_case_ids", "merge_key", "read_official_split", "resolve_classes",
]

IMAGE_NAME = "ct.nii.gz"
MASK_FOLDER = "segmentations"
META_NAME = "meta.csv"
MERGE_FORMAT = 1  # bump when the merge itself changes, so older caches are not reused


def find_case_ids(root: Path) -> list[str]:
    """The ids (folder names) of the cases under `root`, sorted; a SegError when there are none."""
    hint = synth_hint(root, "totalseg")
    if not root.is_dir():
        raise missing_root(root, f"the TotalSegmentator folder (s0000/{IMAGE_NAME}, s0000/{MASK_FOLDER}/, {META_NAME})",
                           "totalseg")
    ids = sorted(p.name for p in root.iterdir() if (p / IMAGE_NAME).is_file())
    if not ids:
        raise SegError(f"data root {root} has no TotalSegmentator cases (<case>/{IMAGE_NAME}); {hint}")
    return ids


def detect_version(mask_folder: Path) -> str:
    """`v1` or `v2`, from the mask file names in one case's `segmentations/` folder."""
    names = {p.name[: -len(".nii.gz")] for p in mask_folder.glob("*.nii.gz")}
    only_v2, only_v1 = set(CLASSES_V2) - set(CLASSES_V1), set(CLASSES_V1) - set(CLASSES_V2)
    if names & only_v2 and not names & only_v1:
        return "v2"
    if names & only_v1 and not names & only_v2:
        return "v1"
    raise SegError(
        f"{mask_folder}: cannot tell the TotalSegmentator version from its {len(names)} mask files; "
        f"expected the 117 v2 names (e.g. heart.nii.gz) or the 104 v1 names (e.g. heart_myocardium.nii.gz)"
    )


def resolve_classes(classes: Union[str, Sequence[str]], version: str) -> list[str]:
    """The class names that `classes` (a group name, one class name or a list of them) means for `version`."""
    available = CLASSES[version]
    if isinstance(classes, str):
        if classes == "all" or classes in GROUPS:
            return group_classes(classes, version)
        if classes not in available:
            choices = ["all", *GROUPS, *available]
            raise SegError(
                f"--data.classes {classes!r} is neither a group ({', '.join(['all', *GROUPS])}) nor a "
                f"TotalSegmentator {version} class{close_matches_hint(classes, choices)}"
            )
        classes = [classes]
    chosen = list(classes)
    if not chosen:
        raise SegError("--data.classes is empty: give a group name (e.g. organs) or a list of class names")
    for name in chosen:
        if name not in available:
            other = "v1" if version == "v2" else "v2"
            note = f" (it is a {other} class)" if name in CLASSES[other] else ""
            raise SegError(
                f"--data.classes: {name!r} is not a TotalSegmentator {version} class{note}"
                f"{close_matches_hint(name, available)}"
            )
    duplicates = sorted({name for name in chosen if chosen.count(name) > 1})
    if duplicates:
        raise SegError(f"--data.classes names {', '.join(duplicates)} more than once")
    return chosen


def close_matches_hint(name: str, choices: Sequence[str]) -> str:
    """`; did you mean: a, b?` for the names in `choices` close to `name`, or an empty string."""
    matches = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
    return f"; did you mean: {', '.join(matches)}?" if matches else ""


def merge_key(version: str, classes: Sequence[str]) -> str:
    """The short hash naming the merged-label cache of one (version, ordered class list, merge format)."""
    text = json.dumps({"format": MERGE_FORMAT, "version": version, "classes": list(classes)})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_official_split(path: Path) -> dict[str, str]:
    """`image_id -> split` (train/val/test) from TotalSegmentator's `meta.csv`; empty when there is no file."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        if not {"image_id", "split"} <= set(reader.fieldnames or []):
            raise SegError(f"{path} has no image_id and split columns (semicolon-separated, as the download has)")
        return {row["image_id"].strip(): row["split"].strip().lower() for row in reader}


def merged_label_map(case: dict, classes: Sequence[str]) -> nib.Nifti1Image:
    """One case's label map: voxels of the mask of `classes[i]` get value i + 1, all others 0."""
    ct = nib.load(case["image"])
    label = np.zeros(ct.shape, dtype=np.uint8)
    for value, name in enumerate(classes, start=1):
        path = Path(case["masks"][name])
        if not path.is_file():
            raise SegError(f"{path} is missing: every case of a TotalSegmentator folder has a mask per class")
        mask = np.asanyarray(nib.load(path).dataobj)
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


def save_atomically(image: nib.Nifti1Image, path: Path) -> None:
    """Save `image` to `path` so that no reader (or a kill) ever sees a half-written file."""
    partial = path.with_name(f".{path.name[: -len('.nii.gz')]}.{os.getpid()}.partial.nii.gz")
    nib.save(image, partial)
    os.replace(partial, path)


class TotalSegmentatorDataModule(VolumeDataModule):
    """The TotalSegmentator CT dataset (v1 or v2), training the chosen classes as one label map.

    Class i of the chosen list is label value i (1-based, 0 = background); `class_names` is
    the chosen list. The merged label maps are cached in `<cache_dir or root/.seg_cache>/
    totalseg_<hash of version and class list>/<case>.nii.gz`, built in `setup` for the cases
    whose merge is missing or older than its masks. The split is meta.csv's (train/val rows)
    when it has validation cases and no `fold` is set, else the base's deterministic split or
    fold; meta.csv's test cases are left out either way.

    Args:
        root: the dataset folder (`s0000/ct.nii.gz`, `s0000/segmentations/`, `meta.csv`).
        classes: a list of class names, one class name, or a group: `all`, `organs`, `vertebrae`,
            `ribs`, `cardiac`, `muscles` (see `totalseg_classes.GROUPS`).
        ct_window: HU range clipped and scaled to [0, 1].
        synthesize_if_missing: write synthetic cases (`seg synth totalseg`) into `root` when it has none.
        **kwargs: see `VolumeDataModule`.
    """

    dataset_name = "totalseg"
    multilabel = False

    def __init__(
        self,
        root: str,
        classes: Union[list[str], str] = "organs",
        ct_window: Sequence[float] = (-1000.0, 1000.0),
        synthesize_if_missing: bool = False,
        **kwargs,
    ):
        super().__init__(root, **kwargs)
        if synthesize_if_missing and not self._has_cases():
            from .synthetic.totalseg import write_totalseg

            write_totalseg(self.root)
        first_case = find_case_ids(self.root)[0]
        self.version = detect_version(self.root / first_case / MASK_FOLDER)
        self.classes = resolve_classes(classes, self.version)
        self.merge_dir = self.cache_folder() / f"totalseg_{merge_key(self.version, self.classes)}"

    def _has_cases(self) -> bool:
        return self.root.is_dir() and any((p / IMAGE_NAME).is_file() for p in self.root.iterdir())

    @property
    def channel_names(self) -> list[str]:
        """One CT channel."""
        return ["CT"]

    @property
    def class_names(self) -> list[str]:
        """The chosen classes, in label-value order (label i + 1 is `class_names[i]`)."""
        return list(self.classes)

    def label_values(self) -> set[int]:
        """0 (background) to the number of chosen classes."""
        return set(range(len(self.classes) + 1))

    def list_cases(self) -> list[dict]:
        """Every case: id, CT path, merged label path (built by `setup`) and its chosen classes' mask paths."""
        cases = []
        for case in find_case_ids(self.root):
            folder = self.root / case
            masks = {name: str(folder / MASK_FOLDER / f"{name}.nii.gz") for name in self.classes}
            label = str(self.merge_dir / f"{case}.nii.gz")
            cases.append({"case": case, "image": str(folder / IMAGE_NAME), "label": label, "masks": masks})
        return cases

    def intensity_transform(self) -> mt.Transform:
        """The CT window (`ct_window`, HU) clipped and scaled to [0, 1]."""
        low, high = self.hparams.ct_window
        return mt.ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)

    def prepare_data(self) -> None:
        """Merge the label maps that are missing or stale (Lightning runs this once, before `setup` on any rank)."""
        self.merge_labels(self.list_cases())

    def setup(self, stage: Optional[str] = None) -> None:
        """Merge the label maps that are still missing or stale, then check, split and build the datasets."""
        self.merge_labels(self.list_cases())
        super().setup(stage)

    def merge_labels(self, cases: list[dict]) -> None:
        """Write the merged label map of every case in `cases` whose cached one is missing or stale."""
        try:
            self.merge_dir.mkdir(parents=True, exist_ok=True)
            self._write_manifest()
        except OSError as err:
            raise SegError(f"cannot write the merged labels to {self.merge_dir} ({err}); set --data.cache_dir") from None
        todo = [case for case in cases if not is_fresh(Path(case["label"]), list(case["masks"].values()))]
        if not todo:
            return
        rank_zero_info(f"seg: merging {len(self.classes)} TotalSegmentator masks of {len(todo)} cases into {self.merge_dir}")
        # decompression releases the GIL, so threads merge cases in parallel
        with ThreadPoolExecutor(max(1, self.hparams.num_workers)) as pool:
            list(pool.map(self._merge_case, todo))

    def _merge_case(self, case: dict) -> None:
        save_atomically(merged_label_map(case, self.classes), Path(case["label"]))

    def _write_manifest(self) -> None:
        # for people browsing the cache: what the hashed folder name stands for
        manifest = self.merge_dir / "classes.json"
        text = json.dumps({"version": self.version, "classes": self.classes}, indent=1)
        if not manifest.is_file() or manifest.read_text() != text:
            manifest.write_text(text)

    def split(self, case_ids: list[str]) -> tuple[list[str], list[str]]:
        """meta.csv's train and val cases; the base's split (or `fold`) when it has no val cases or a fold is set.

        meta.csv's test cases are never used, whichever split applies.
        """
        official = read_official_split(self.root / META_NAME)
        usable = [case for case in case_ids if official.get(case) != "test"]
        val = [case for case in usable if official.get(case) == "val"]
        if not val or self.hparams.fold is not None:
            return super().split(usable)
        unlisted = [case for case in usable if case not in official]
        if unlisted:
            warnings.warn(
                f"{len(unlisted)} cases in {self.root} are not in {META_NAME} and are left out "
                f"(e.g. {', '.join(unlisted[:3])})",
                stacklevel=2,
            )
        return sorted(case for case in usable if official.get(case) == "train"), sorted(val)
