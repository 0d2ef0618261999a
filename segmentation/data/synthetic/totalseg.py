"""Synthetic TotalSegmentator cases in the real v2 layout (what `seg synth totalseg` writes).

Each case is `sNNNN/ct.nii.gz` (int16 HU: air, a fat layer, soft tissue, organs, bone) and
`sNNNN/segmentations/<class>.nii.gz` for all 117 v2 class names, as in the download: a few
(liver, spleen, kidneys, aorta, three vertebrae) hold organ-like blobs, the rest are empty.
`meta.csv` (semicolon-separated `image_id;split`) holds train and val rows, and test rows from
10 cases on. Voxels are 1.5 x 1.5 x 3 mm on LPS axes: voxel axis 0 runs to the patient's
left, axis 1 to the back, axis 2 up, and the organs sit on their anatomical side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...core.storage import write_text_atomically
from ..layouts.totalseg import CLASSES_V2, IMAGE_NAME, MASK_FOLDER, META_NAME
from . import register
from .common import ellipsoid_mask, lps_affine, save_nifti, smooth

SPACING = (1.5, 1.5, 3.0)

# name: (HU, centre, radii), centre and radii as fractions of the volume's shape
ORGANS: dict[str, tuple[float, tuple[float, float, float], tuple[float, float, float]]] = {
    "liver": (60.0, (0.33, 0.45, 0.55), (0.17, 0.16, 0.20)),
    "spleen": (110.0, (0.70, 0.55, 0.62), (0.08, 0.08, 0.11)),
    "kidney_right": (160.0, (0.36, 0.68, 0.38), (0.06, 0.06, 0.11)),
    "kidney_left": (160.0, (0.64, 0.68, 0.40), (0.06, 0.06, 0.11)),
    "aorta": (220.0, (0.54, 0.58, 0.50), (0.04, 0.04, 0.60)),
    "vertebrae_L2": (700.0, (0.50, 0.76, 0.26), (0.07, 0.06, 0.07)),
    "vertebrae_L1": (700.0, (0.50, 0.76, 0.45), (0.07, 0.06, 0.07)),
    "vertebrae_T12": (700.0, (0.50, 0.76, 0.64), (0.07, 0.06, 0.07)),
}


def synthetic_case(rng: np.random.Generator, shape: Sequence[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One CT-like volume (int16 HU) and the non-overlapping masks of the classes in `ORGANS`."""
    shape = tuple(shape)
    size = np.array(shape, dtype=float)
    body_radii = size * np.array([0.46, 0.38, 0.55]) * rng.uniform(0.95, 1.0, 3)
    body = ellipsoid_mask(shape, size / 2, body_radii)
    hu = np.full(shape, -1000.0)
    hu[body] = -100.0  # subcutaneous fat
    hu[ellipsoid_mask(shape, size / 2, body_radii * 0.85)] = 40.0  # muscle and soft tissue
    label = np.zeros(shape, dtype=np.uint8)
    for value, (density, centre_fraction, radii) in enumerate(ORGANS.values(), start=1):
        centre = size * (np.array(centre_fraction) + rng.uniform(-0.03, 0.03, 3))
        blob = ellipsoid_mask(shape, centre, size * np.array(radii) * rng.uniform(0.9, 1.1, 3)) & body
        label[blob] = value  # a later organ wins where blobs touch: masks never overlap, as in the real data
        hu[blob] = density
    # partial-volume blur kept small: the vertebrae are only a few voxels across at 32^3
    hu = smooth(hu, 0.5) + smooth(rng.normal(0, 30, shape), 0.8) * 2.0
    masks = {name: (label == value).astype(np.uint8) for value, name in enumerate(ORGANS, start=1)}
    return np.clip(hu, -1024, 3071).astype(np.int16), masks


def split_of(index: int, cases: int) -> str:
    """The meta.csv split of case `index`: the last tenth test (from 10 cases on), a fifth before it val."""
    n_test = cases // 10
    n_val = max(1, cases // 5) if cases > 1 else 0
    if index >= cases - n_test:
        return "test"
    return "val" if index >= cases - n_test - n_val else "train"


def write_case(folder: Path, image: np.ndarray, masks: dict[str, np.ndarray], affine: np.ndarray) -> None:
    """Write `ct.nii.gz` and one uint8 mask per v2 class (all-zero for the classes not in `masks`)."""
    (folder / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    save_nifti(image, affine, folder / IMAGE_NAME)
    empty = np.zeros(image.shape, dtype=np.uint8)
    for name in CLASSES_V2:
        save_nifti(masks.get(name, empty), affine, folder / MASK_FOLDER / f"{name}.nii.gz")


@register("totalseg", "TotalSegmentator v2 stand-in (sNNNN/ct.nii.gz, 117 masks per case, meta.csv)")
def write_totalseg(
    out: Path | str,
    *,
    cases: int = 12,
    shape: Sequence[int] = (48, 48, 48),
    seed: int = 0,
) -> Path:
    """Write `cases` synthetic TotalSegmentator v2 cases and their `meta.csv` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = lps_affine(SPACING, shape)
    rows = ["image_id;split"]
    for index in range(cases):
        image, masks = synthetic_case(rng, shape)
        case = f"s{index:04d}"
        write_case(out / case, image, masks, affine)
        rows.append(f"{case};{split_of(index, cases)}")
    # meta.csv last: its presence marks a complete dataset
    write_text_atomically(out / META_NAME, "\n".join(rows) + "\n")
    return out
