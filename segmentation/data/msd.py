"""MSDDataModule: any Medical Segmentation Decathlon task, read from its `dataset.json`.

Layout: `<root>/dataset.json`, `<root>/imagesTr/*.nii.gz`, `<root>/labelsTr/*.nii.gz`.
Channel names come from the json's `modality`, class names from its `labels`.
CT tasks are clipped to a HU window and scaled to [0, 1]; MRI tasks get a
z-score per channel over nonzero voxels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from monai import transforms as mt

from ..errors import SegError
from .base import VolumeDataModule, missing_root


def read_dataset_json(root: Path) -> dict:
    """The parsed `dataset.json` of an MSD task folder, with a clear error when it is missing or broken."""
    path = root / "dataset.json"
    if not root.exists():
        raise missing_root(root, "the MSD task folder (the one with dataset.json)", "demo")
    if not path.is_file():
        raise SegError(f"{path} not found: an MSD task folder has a dataset.json beside imagesTr/ and labelsTr/")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SegError(f"{path} is not valid JSON ({err}); restore it from the task's archive") from None
    for key in ("modality", "labels", "training"):
        if key not in meta:
            raise SegError(f"{path} has no {key!r} entry; is this an MSD dataset.json?")
    return meta


class MSDDataModule(VolumeDataModule):
    """A Medical Segmentation Decathlon task (3D or 4D images) from its own folder layout.

    Args:
        name: name of the run's dataset (default `msd_<task name>` from dataset.json).
        ct_window: HU range clipped and scaled to [0, 1] for CT tasks.
        synthesize_if_missing: write the synthetic demo task into `root` when it does not exist.
        **kwargs: see `VolumeDataModule`.
    """

    def __init__(
        self,
        root: str,
        name: Optional[str] = None,
        ct_window: Sequence[float] = (-175.0, 250.0),
        synthesize_if_missing: bool = False,
        **kwargs,
    ):
        super().__init__(root, **kwargs)
        if synthesize_if_missing and not (self.root / "dataset.json").exists():
            from .synthetic import write_demo_task

            write_demo_task(self.root)
        self.meta = read_dataset_json(self.root)
        self.dataset_name = name or f"msd_{str(self.meta.get('name', self.root.name)).lower()}"

    @property
    def channel_names(self) -> list[str]:
        """The json's modality names in channel order."""
        modality = self.meta["modality"]
        return [modality[key] for key in sorted(modality, key=int)]

    @property
    def class_names(self) -> list[str]:
        """The json's label names, background excluded, in label-value order."""
        labels = self.meta["labels"]
        return [labels[key].lower() for key in sorted(labels, key=int) if int(key) != 0]

    def label_values(self) -> set[int]:
        """The json's label values (0 = background included)."""
        return {int(key) for key in self.meta["labels"]}

    def is_ct(self) -> bool:
        """Whether the task's images are CT (normalised by HU window)."""
        return any(name.upper() == "CT" for name in self.channel_names)

    def list_cases(self) -> list[dict]:
        """The json's training entries with paths resolved inside the root."""
        cases = []
        for entry in self.meta["training"]:
            image, label = self._inside_root(entry["image"]), self._inside_root(entry["label"])
            case_id = image.name.split(".nii")[0]
            cases.append({"case": case_id, "image": str(image), "label": str(label)})
        return cases

    def _inside_root(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise SegError(f"{self.root / 'dataset.json'}: entry {relative!r} points outside the dataset root")
        return path

    def intensity_transform(self) -> mt.Transform:
        """CT window to [0, 1], or MRI z-score per channel over nonzero voxels."""
        if self.is_ct():
            low, high = self.hparams.ct_window
            return mt.ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
        return mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)
