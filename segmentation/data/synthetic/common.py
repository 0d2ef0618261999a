"""Shared pieces of the synthetic-data writers: shapes in voxel space, scanner-like affines, smoothing, saving.

SciPy and nibabel are imported on first use, not with the writer modules: `seg synth --help`
imports every writer module (to list them) and should answer at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def ellipsoid_mask(
    shape: Sequence[int], centre: Sequence[float] | np.ndarray, radii: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipsoid in voxel coordinates."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.asarray(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0)


def lps_affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """A scanner-like affine: LPS axes (x and y flipped), the given spacing, centred on the origin."""
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [spacing[0] * shape[0] / 2, spacing[1] * shape[1] / 2, -spacing[2] * shape[2] / 2]
    return affine


def smooth(volume: np.ndarray, sigma: float) -> np.ndarray:
    """`volume` blurred by a Gaussian of `sigma` voxels (partial-volume effect, smooth noise and bias fields)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(volume, sigma)


def save_nifti(data: np.ndarray, affine: np.ndarray, path: Path | str) -> None:
    """Write `data` as a NIfTI file at `path` with `affine` (the dtype is kept)."""
    import nibabel as nib

    from ..nifti import save_nifti as save_atomically  # (imported here: `seg synth --help` loads no nibabel)

    save_atomically(nib.Nifti1Image(data, affine), path)
