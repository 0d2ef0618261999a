"""Synthetic CT tasks in the Medical Segmentation Decathlon layout: the demo task and a Task03_Liver stand-in.

Each case: a body of soft tissue in air, an "organ" (label 1) with one or two
"lesions" (label 2) inside it, HU-like intensities with smooth noise, and a
scanner-like (LPS, anisotropic) affine. `dataset.json` is written last: its
presence marks a complete task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ...core.storage import write_text_atomically
from ..layouts.msd import DATASET_JSON, IMAGES_FOLDER, LABELS_FOLDER, training_entry
from . import register
from .common import ellipsoid_mask, lps_affine, save_nifti, smooth


@dataclass(frozen=True)
class TaskSpec:
    """What distinguishes one synthetic MSD task: names, labels, voxel spacing and tissue HU values."""

    name: str
    file_pattern: str  # e.g. "liver_{}.nii.gz", formatted with the case index
    labels: dict[str, str]
    spacing: tuple[float, float, float]
    tissue_hu: tuple[float, float, float]  # body, organ (label 1), lesion (label 2)
    description: str


DEMO = TaskSpec("Demo", "demo_{:03d}.nii.gz", {"0": "background", "1": "organ", "2": "lesion"},
                (1.5, 1.5, 2.0), (40.0, 120.0, 220.0), "Synthetic CT-like task written by `seg synth demo`")
LIVER = TaskSpec("Liver", "liver_{}.nii.gz", {"0": "background", "1": "liver", "2": "cancer"},
                 (0.8, 0.8, 2.5), (40.0, 100.0, 20.0), "Synthetic stand-in for Task03_Liver (`seg synth msd`)")


def ct_case(
    rng: np.random.Generator, shape: Sequence[int], tissue_hu: Sequence[float] = DEMO.tissue_hu
) -> tuple[np.ndarray, np.ndarray]:
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
    hu[body], hu[label == 1], hu[label == 2] = tissue_hu
    hu = smooth(hu, 0.7) + smooth(rng.normal(0, 40, shape), 0.8) * 2.0
    return np.clip(hu, -1024, 3071).astype(np.int16), label


def write_msd_task(out: Path | str, spec: TaskSpec, *, cases: int, shape: Sequence[int], seed: int) -> Path:
    """Write `cases` synthetic cases of task `spec` into `out` (dataset.json, imagesTr/, labelsTr/)."""
    out = Path(out)
    (out / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    (out / LABELS_FOLDER).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    affine = lps_affine(spec.spacing, shape)
    training = []
    for index in range(cases):
        image, label = ct_case(rng, shape, spec.tissue_hu)
        name = spec.file_pattern.format(index)
        save_nifti(image, affine, out / IMAGES_FOLDER / name)
        save_nifti(label, affine, out / LABELS_FOLDER / name)
        training.append(training_entry(name))
    meta = {
        "name": spec.name,
        "description": spec.description,
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": spec.labels,
        "numTraining": cases,
        "numTest": 0,
        "training": training,
        "test": [],
    }
    write_text_atomically(out / DATASET_JSON, json.dumps(meta, indent=2))
    return out


@register("demo", "small MSD-layout CT task (organ + lesion), what configs/demo.yaml trains on")
def write_demo_task(out: Path | str, *, cases: int = 12, shape: Sequence[int] = (48, 48, 48), seed: int = 0) -> Path:
    """The demo task that `configs/demo.yaml` trains on."""
    return write_msd_task(out, DEMO, cases=cases, shape=shape, seed=seed)


@register("msd", "Task03_Liver stand-in (MSD layout, CT, liver + cancer, anisotropic voxels)")
def write_liver_task(out: Path | str, *, cases: int = 8, shape: Sequence[int] = (64, 64, 32), seed: int = 0) -> Path:
    """A Task03_Liver stand-in: liver_<i>.nii.gz, liver + cancer labels, 0.8 x 0.8 x 2.5 mm voxels."""
    return write_msd_task(out, LIVER, cases=cases, shape=shape, seed=seed)
