"""MSDDataModule: any Medical Segmentation Decathlon task, read from its `dataset.json` (`layouts.msd`).

Channel names come from the json's `modality`, class names from its `labels`.
CT tasks are clipped to a HU window and scaled to [0, 1]; MRI tasks get a
z-score per channel over nonzero voxels.
"""

from __future__ import annotations

from typing import Optional, Sequence

from monai import transforms as mt
from typing_extensions import override

from .base import VolumeDataModule
from .layouts import msd as layout


class MSDDataModule(VolumeDataModule):
    """A Medical Segmentation Decathlon task (3D or 4D images) from its own folder layout.

    Args:
        name: name of the run's dataset (default `msd_<task name>` from dataset.json).
        ct_window: HU range clipped and scaled to [0, 1] for CT tasks.
        **kwargs: see `VolumeDataModule`.
    """

    def __init__(
        self,
        root: str,
        name: Optional[str] = None,
        ct_window: Sequence[float] = (-175.0, 250.0),
        **kwargs,
    ):
        super().__init__(root, **kwargs)
        self.meta = layout.read_dataset_json(self.root, kind="demo" if name == "demo" else "msd")
        self.dataset_name = name or f"msd_{str(self.meta.get('name', self.root.name)).lower()}"

    @property
    @override
    def channel_names(self) -> list[str]:
        """The json's modality names in channel order."""
        return layout.channel_names(self.meta)

    @property
    @override
    def class_names(self) -> list[str]:
        """The json's label names, background excluded, in label-value order."""
        return layout.class_names(self.meta)

    @override
    def label_values(self) -> set[int]:
        """The json's label values (0 = background included)."""
        return {int(key) for key in self.meta["labels"]}

    def is_ct(self) -> bool:
        """Whether the task's images are CT (normalised by HU window)."""
        return any(name.upper() == "CT" for name in self.channel_names)

    @override
    def list_cases(self) -> list[dict]:
        """The json's training entries with paths resolved inside the root."""
        return layout.training_cases(self.root, self.meta)

    @override
    def intensity_transform(self) -> mt.Transform:
        """CT window to [0, 1], or MRI z-score per channel over nonzero voxels."""
        if self.is_ct():
            low, high = self.hparams.ct_window
            return mt.ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
        return mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True)
