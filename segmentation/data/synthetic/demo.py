"""The synthetic demo task (what `configs/demo.yaml` trains on).

`write_demo_task` writes a small MSD-layout CT task: an "organ" (label 1) with
"lesions" (label 2) inside it, in a body of soft tissue surrounded by air, with
HU-like intensities, smooth noise and a non-identity (LPS, anisotropic) affine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from .common import ellipsoid_mask, lps_affine


def demo_case(rng: np.random.Generator, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One CT-like volume (int16 HU) and its label map (0 background, 1 organ, 2 lesion)."""
    shape = tuple(shape)
    size = np.array(shape, dtype=float)
    body = ellipsoid_mask(shape, size / 2, size * rng.uniform(0.40, 0.47, 3))
    organ_centre = size / 2 + rng.uniform(-0.08, 0.08, 3) * size
    organ = ellipsoid_mask(shape, organ_centre, size * rng.uniform(0.16, 0.24, 3)) & body
    label = organ.astype(np.uint8)
    for _ in range(rng.integers(1, 3)):
        radius = rng.uniform(0.07, 0.10) * size.min()
        centre = organ_centre + rng.uniform(-0.08, 0.08, 3) * size
        label[ellipsoid_mask(shape, centre, [radius] * 3) & organ] = 2
    hu = np.full(shape, -1000.0)
    hu[body] = 40.0
    hu[label == 1] = 120.0
    hu[label == 2] = 220.0
    hu = gaussian_filter(hu, 0.7) + gaussian_filter(rng.normal(0, 40, shape), 0.8) * 2.0
    return np.clip(hu, -1024, 3071).astype(np.int16), label


def write_demo_task(
    out: Path | str,
    cases: int = 12,
    shape: Sequence[int] = (48, 48, 48),
    spacing: Sequence[float] = (1.5, 1.5, 2.0),
    seed: int = 0,
) -> Path:
    """Write the synthetic demo task (MSD layout: dataset.json, imagesTr/, labelsTr/) into `out`."""
    out = Path(out)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = lps_affine(spacing, shape)
    training = []
    for index in range(cases):
        image, label = demo_case(rng, shape)
        name = f"demo_{index:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), out / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, affine), out / "labelsTr" / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {
        "name": "Demo",
        "description": "Synthetic CT-like task written by `seg synth demo`",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "organ", "2": "lesion"},
        "numTraining": cases,
        "numTest": 0,
        "training": training,
        "test": [],
    }
    # dataset.json last: its presence marks a complete task
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out
