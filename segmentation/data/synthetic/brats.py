"""Synthetic BraTS cases in the real 2021 and 2023+ layouts (file naming from `data.layouts.brats`).

Each case is a skull-stripped "brain" (grey matter around white matter, two CSF ventricles)
with a glioma-like tumour: edema around a tumour core whose rim enhances around a
necrotic centre. The four modalities (T1, T1-contrast, T2, FLAIR) give each tissue its
usual contrast (CSF bright on T2 and dark on FLAIR, the rim bright after contrast, edema
bright on T2 and FLAIR), with a per-case scanner gain, a smooth bias field and noise,
stored as int16 with zero outside the brain and a BraTS-like LPS 1 mm affine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..layouts.brats import BRATS2021, BRATS2023, EDEMA, NECROTIC, BraTSLayout
from . import register
from .common import ellipsoid_mask, lps_affine, save_nifti, smooth

# tissue -> mean intensity in T1, T1-contrast, T2, FLAIR (arbitrary scanner units)
CONTRAST = {
    "grey": (500, 520, 500, 420),
    "white": (700, 720, 350, 300),
    "csf": (200, 210, 1600, 90),
    "edema": (450, 470, 1100, 900),
    "enhancing": (520, 1300, 800, 700),
    "necrotic": (250, 260, 1400, 500),
}


def brain_tissues(rng: np.random.Generator, size: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The brain mask and its healthy tissue masks (grey, white, csf)."""
    shape = tuple(int(n) for n in size)
    radii = size * np.array([0.40, 0.45, 0.40]) * rng.uniform(0.92, 1.05, 3)
    brain = ellipsoid_mask(shape, size / 2, radii)
    white = ellipsoid_mask(shape, size / 2, radii * 0.72) & brain
    csf = np.zeros(shape, dtype=bool)
    for side in (-1, 1):
        centre = size / 2 + np.array([side * 0.06, 0.02, 0.03]) * size
        csf |= ellipsoid_mask(shape, centre, size * np.array([0.035, 0.12, 0.07]))
    return brain, {"grey": brain & ~white, "white": white & ~csf, "csf": csf & brain}


def tumour_labels(rng: np.random.Generator, size: np.ndarray, brain: np.ndarray, enhancing: int) -> np.ndarray:
    """A label map (uint8) of a tumour in one hemisphere: edema around a core, enhancing rim around necrosis."""
    shape = brain.shape
    side = rng.choice([-1, 1])
    centre = size / 2 + np.array([side * 0.17, rng.uniform(-0.12, 0.12), rng.uniform(-0.08, 0.08)]) * size
    edema_radii = size * rng.uniform(0.13, 0.18, 3)
    core_radii = edema_radii * rng.uniform(0.5, 0.6, 3)
    # a second, offset lobe makes the edema spread unevenly around the core
    lobe_centre = centre + rng.uniform(-0.5, 0.5, 3) * edema_radii
    whole = ellipsoid_mask(shape, centre, edema_radii) | ellipsoid_mask(shape, lobe_centre, edema_radii * 0.7)
    core = ellipsoid_mask(shape, centre, core_radii)
    necrosis = ellipsoid_mask(shape, centre, core_radii * rng.uniform(0.5, 0.65))
    label = np.zeros(shape, dtype=np.uint8)
    label[(whole | core) & brain] = EDEMA
    label[core & brain] = enhancing
    label[necrosis & brain] = NECROTIC
    return label


def tissue_masks(healthy: dict[str, np.ndarray], label: np.ndarray, enhancing: int) -> dict[str, np.ndarray]:
    """Every tissue of `CONTRAST` as a mask, the tumour replacing the healthy tissue it grows in."""
    tumour = label > 0
    masks = {name: mask & ~tumour for name, mask in healthy.items()}
    masks.update(edema=label == EDEMA, enhancing=label == enhancing, necrotic=label == NECROTIC)
    return masks


def modality_volumes(rng: np.random.Generator, brain: np.ndarray, tissues: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The four int16 volumes T1, T1-contrast, T2, FLAIR: zero outside the brain, at least 1 inside."""
    shape = brain.shape
    bias = 1.0 + 0.12 * normalised(smooth(rng.normal(size=shape), sigma=min(shape) / 5))
    volumes = []
    for channel in range(4):
        image = np.zeros(shape)
        for name, mask in tissues.items():
            image[mask] = CONTRAST[name][channel]
        image = smooth(image, 0.6) * bias * rng.uniform(0.8, 1.25)
        image += smooth(rng.normal(0, 25, shape), 0.5)
        image = np.where(brain, np.clip(image, 1, 32767), 0)
        volumes.append(image.astype(np.int16))
    return volumes


def normalised(field: np.ndarray) -> np.ndarray:
    """`field` scaled to a maximum absolute value of 1."""
    return field / max(float(np.abs(field).max()), 1e-12)


def write_brats(out: Path | str, layout: BraTSLayout, *, cases: int, shape: Sequence[int], seed: int) -> Path:
    """Write `cases` synthetic cases in `layout`'s folder and file naming into `out`."""
    out = Path(out)
    size = np.array(shape, dtype=float)
    rng = np.random.default_rng(seed)
    affine = lps_affine((1.0, 1.0, 1.0), shape)
    for index in range(cases):
        brain, healthy = brain_tissues(rng, size)
        label = tumour_labels(rng, size, brain, layout.enhancing)
        volumes = modality_volumes(rng, brain, tissue_masks(healthy, label, layout.enhancing))
        case_dir = out / layout.case_id(index)
        case_dir.mkdir(parents=True, exist_ok=True)
        for path, volume in zip(layout.image_files(case_dir), volumes):
            save_nifti(volume, affine, path)
        save_nifti(label, affine, layout.label_file(case_dir))
    return out


@register("brats", "BraTS 2021 stand-in (case folders, 4 MRI modalities, labels 1 necrotic, 2 edema, 4 enhancing)")
def write_brats2021(
    out: Path | str, *, cases: int = 12, shape: Sequence[int] = (48, 48, 48), seed: int = 0
) -> Path:
    """Synthetic cases in the BraTS 2021 layout (labels 0, 1 necrotic, 2 edema, 4 enhancing) into `out`."""
    return write_brats(out, BRATS2021, cases=cases, shape=shape, seed=seed)


@register("brats2023", "BraTS 2023+ GLI stand-in (BraTS-GLI-* folders, t1n/t1c/t2w/t2f, labels 1, 2, 3 enhancing)")
def write_brats2023(
    out: Path | str, *, cases: int = 12, shape: Sequence[int] = (48, 48, 48), seed: int = 0
) -> Path:
    """Synthetic cases in the BraTS 2023+ (GLI) layout (labels 0, 1 necrotic, 2 edema, 3 enhancing) into `out`."""
    return write_brats(out, BRATS2023, cases=cases, shape=shape, seed=seed)
