"""The MONAI transform chains of a dataset: preprocessing, training augmentation and inference.

Every chain starts the same way (load, channel first, reorient to RAS, optionally resample: images
linearly, labels nearest), then normalises with the dataset's intensity transform. Training adds
foreground/background-balanced random patches, flips and intensity scaling/shifts; inference keeps the
metadata MONAI's `Invertd` needs to bring predictions back to the input's grid.
"""

from __future__ import annotations

from typing import Optional, Sequence

from monai import transforms as mt


def spatial_steps(keys: list[str], spacing: Optional[Sequence[float]]) -> list[mt.Transform]:
    """Load, channel first, reorient to RAS and (with `spacing`) resample `keys` (images linear, labels nearest)."""
    modes = tuple("nearest" if key == "label" else "bilinear" for key in keys)
    steps: list[mt.Transform] = [
        mt.LoadImaged(keys=keys, ensure_channel_first=True, image_only=True),
        mt.Orientationd(keys=keys, axcodes="RAS"),
    ]
    if spacing:
        steps.append(mt.Spacingd(keys=keys, pixdim=tuple(spacing), mode=modes))
    return steps


def preprocessing(intensity: mt.Transform, label_transform: Optional[mt.Transform],
                  spacing: Optional[Sequence[float]]) -> list[mt.Transform]:
    """Deterministic steps for labelled cases: spatial steps, normalisation, label targets, plain tensors."""
    steps = spatial_steps(["image", "label"], spacing)
    steps.append(intensity)
    if label_transform is not None:
        steps.append(label_transform)
    steps.append(mt.EnsureTyped(keys=["image", "label"], track_meta=False))
    return steps


def store_preprocessing(spacing: Optional[Sequence[float]]) -> mt.Compose:
    """What the store runs before it normalises and crops a case (`data.store`): the spatial steps alone; the label
    transform (e.g. BraTS regions) runs per patch, so the store keeps the compact label map."""
    return mt.Compose([*spatial_steps(["image", "label"], spacing),
                       mt.EnsureTyped(keys=["image", "label"], track_meta=False)])


def inference_transform(intensity: mt.Transform, spacing: Optional[Sequence[float]]) -> mt.Compose:
    """Preprocessing of images alone, keeping the metadata `Invertd` needs to undo it."""
    return mt.Compose([*spatial_steps(["image"], spacing), intensity, mt.EnsureTyped(keys="image")])


def augmentation(patch_size: Sequence[int], pos_fraction: float, samples_per_volume: int) -> list[mt.Transform]:
    """Random steps of training: balanced patches, flips, intensity scaling and shifts (±10%)."""
    keys = ["image", "label"]
    return [
        mt.SpatialPadd(keys=keys, spatial_size=list(patch_size)),
        mt.RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=list(patch_size), pos=pos_fraction,
                                  neg=1.0 - pos_fraction, num_samples=samples_per_volume),
        *(mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)),
        mt.RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
    ]
