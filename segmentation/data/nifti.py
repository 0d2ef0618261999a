"""NIfTI files read with nibabel, typed as what they are.

`nib.load` is declared to return any of nibabel's formats (`FileBasedImage`, which has no `affine`,
`dataobj` or `shape`); seg reads NIfTI files only (`.nii`, `.nii.gz`), which nibabel loads as a
`Nifti1Image` or its subclass `Nifti2Image`. Every NIfTI file seg writes goes through `save_nifti`: built in
memory, then written durably and atomically (a kill leaves the old file or the new one).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from ..core.storage import write_atomically


def load_nifti(path: str | Path) -> nib.Nifti1Image:
    """The NIfTI image at `path` (`nib.load`: the header read now, the voxels on access)."""
    return cast(nib.Nifti1Image, nib.load(str(path)))


def save_nifti(image: nib.Nifti1Image, path: str | Path) -> None:
    """Save `image` at `path` (`.nii.gz`: gzip-compressed; `.nii`: plain) atomically. The bytes are built in memory,
    so the temporary file's name need not end in `.nii.gz` for nibabel to pick the format."""
    data = image.to_bytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=1, mtime=0)
    write_atomically(Path(path), lambda partial: partial.write_bytes(data))


def label_voxels(image: nib.Nifti1Image) -> np.ndarray:
    """The voxels of a label image as integers (rounded: a float-stored label map reads as its values)."""
    return np.rint(np.asanyarray(image.dataobj)).astype(np.int64)
