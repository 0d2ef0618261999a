"""NIfTI files read with nibabel, typed as what they are.

`nib.load` is declared to return any of nibabel's formats (`FileBasedImage`, which has no `affine`,
`dataobj` or `shape`); seg reads NIfTI files only (`.nii`, `.nii.gz`), which nibabel loads as a
`Nifti1Image` or its subclass `Nifti2Image`.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import nibabel as nib


def load_nifti(path: str | Path) -> nib.Nifti1Image:
    """The NIfTI image at `path` (`nib.load`: the header read now, the voxels on access)."""
    return cast(nib.Nifti1Image, nib.load(str(path)))
