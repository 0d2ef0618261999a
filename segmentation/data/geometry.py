"""Label maps back in each input's own geometry: undoing the preprocessing and saving with the input's header.

`undo_preprocessing` inverts MONAI's spatial steps of one predicted volume (`Invertd`:
resampling and reorientation, nearest-neighbour); `save_in_input_geometry` writes it
with the input file's header, so the output has the input's shape, affine and orientation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai import transforms as mt
from monai.data import MetaTensor


def first_image_path(image: Any) -> Path:
    """The file whose geometry a prediction takes: the image, or its first channel's file."""
    return Path(image[0] if isinstance(image, (list, tuple)) else image)


def save_in_input_geometry(labels: torch.Tensor, source: Path, target: Path) -> Path:
    """Save a (1, X, Y, Z) label map with the header (shape, affine, orientation) of `source`."""
    reference = nib.load(str(source))
    data = labels[0].detach().cpu().numpy().astype(np.uint8 if labels.max() < 256 else np.int16)
    if data.shape != reference.shape[:3]:
        raise RuntimeError(f"prediction shape {data.shape} does not match {source} {reference.shape[:3]}")
    header = reference.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header["scl_slope"], header["scl_inter"] = 1, 0
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, reference.affine, header), str(target))
    return target


def undo_preprocessing(item: dict, pipeline: mt.Compose) -> torch.Tensor:
    """`item["pred"]` (C, X, Y, Z, on the preprocessed grid of `item["image"]`) back on the input's voxel grid.

    `pipeline` must be the very Compose that preprocessed the image (MONAI checks the instances).
    """
    inverse = mt.Invertd(keys="pred", transform=pipeline, orig_keys="image", nearest_interp=True)
    # Invertd silently skips a plain tensor: it must be a MetaTensor to receive the image's operations
    item = {**item, "pred": MetaTensor(item["pred"])}
    return torch.as_tensor(inverse(item)["pred"])
