"""Predictions back in each input's own geometry: undoing the preprocessing and saving with the input's header.

`undo_preprocessing` inverts MONAI's spatial steps of one predicted volume (`Invertd`:
resampling and reorientation). `discrete_in_input_grid` brings class probabilities back
with linear interpolation and only then takes the argmax (or the 0.5 threshold of sigmoid
regions), a few channels at a time so that 100+ classes fit: smooth boundaries where the
training grid is coarser than the input's, where nearest-neighbour inversion of the
discretised map gives blocks. `save_in_input_geometry` writes the label map with the input
file's header, so the output has the input's shape, affine and orientation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import nibabel as nib
import numpy as np
import torch
from monai import transforms as mt
from monai.data import MetaTensor

from .nifti import load_nifti, save_nifti


def first_image_path(image: Any) -> Path:
    """The file whose geometry a prediction takes: the image, or its first channel's file."""
    return Path(image[0] if isinstance(image, (list, tuple)) else image)


def save_in_input_geometry(labels: torch.Tensor, source: Path, target: Path) -> Path:
    """Save a (1, X, Y, Z) label map with the header (shape, affine, orientation) of `source`."""
    reference = load_nifti(source)
    data = labels[0].detach().cpu().numpy().astype(np.uint8 if labels.max() < 256 else np.int16)
    if data.shape != reference.shape[:3]:
        raise RuntimeError(f"prediction shape {data.shape} does not match {source} {reference.shape[:3]}")
    header = reference.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header["scl_slope"], header["scl_inter"] = 1, 0
    target.parent.mkdir(parents=True, exist_ok=True)
    save_nifti(nib.Nifti1Image(data, reference.affine, header), target)
    return target


CHANNELS_PER_INVERSION = 8  # channels resampled at once: bounds the memory of many-class inversions


def undo_preprocessing(item: dict, pipeline: mt.Compose, nearest: bool = True) -> torch.Tensor:
    """`item["pred"]` (C, X, Y, Z, on the preprocessed grid of `item["image"]`) back on the input's voxel grid.

    `pipeline` must be the very Compose that preprocessed the image (MONAI checks the instances).
    `nearest`: nearest-neighbour resampling (for label maps); otherwise the image's own (linear) mode.
    """
    inverse = mt.Invertd(keys="pred", transform=pipeline, orig_keys="image", nearest_interp=nearest)
    # Invertd silently skips a plain tensor: it must be a MetaTensor to receive the image's operations
    item = {**item, "pred": MetaTensor(item["pred"])}
    return torch.as_tensor(inverse(item)["pred"])


def discrete_in_input_grid(item: dict, pipeline: mt.Compose, multilabel: bool) -> torch.Tensor:
    """Class probabilities `item["pred"]` (C, x, y, z, preprocessed grid) as a discrete prediction on the input's grid.

    Softmax classes: a (1, X, Y, Z) label map, the argmax of the linearly resampled probabilities.
    Sigmoid regions (`multilabel`): (C, X, Y, Z) boolean masks, each resampled probability > 0.5.
    """
    probabilities = item["pred"]
    masks: list[torch.Tensor] = []
    best_value: Optional[torch.Tensor] = None
    best_index: Optional[torch.Tensor] = None
    for start in range(0, probabilities.shape[0], CHANNELS_PER_INVERSION):
        part = undo_preprocessing({**item, "pred": probabilities[start:start + CHANNELS_PER_INVERSION]}, pipeline,
                                  nearest=False)
        if multilabel:
            masks.append(part > 0.5)
            continue
        value, index = part.max(dim=0)
        if best_value is None or best_index is None:
            best_value, best_index = value, index
        else:
            better = value > best_value
            best_value = torch.where(better, value, best_value)
            best_index = torch.where(better, index + start, best_index)
    if multilabel:
        return torch.cat(masks)
    assert best_index is not None  # (probabilities have at least one channel)
    return best_index[None]
