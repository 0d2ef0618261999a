"""The rules `seg plan` applies to a dataset's fingerprint: nnU-Net v2's default planner, one function per choice.

Each rule returns its value and why (a phrase for the plan's table). Everything is per axis in RAS order
(x, y, z); nnU-Net works in its reader's order with the coarsest axis first, which changes no rule but the tie
between equally oversized patch axes (`axis_to_shrink`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

ANISOTROPY = 3.0  # nnU-Net's ANISO_THRESHOLD
PATCH_VOXEL_BUDGET = 256**3  # the isotropic-in-mm start of a 3D patch
MAX_DATASET_COVERED = 0.05  # one batch sees at most 5% of the dataset's voxels
MIN_BATCH = 2
LOWRES_THRESHOLD = 0.25  # a full-resolution patch covering less of the median image asks for a lower resolution
LOWRES_STEP = 1.03  # nnU-Net's spacing increase per try
RELATIVE_SIZE_FOR_MASK = 0.75  # z-score over the nonzero region only when cropping to it removes >= 1/4


def target_spacing(spacings: np.ndarray, cropped_shapes: np.ndarray) -> tuple[list[float], str]:
    """The per-axis median spacing; an axis both > 3x coarser than the others and with < 1/3 of their voxels
    (median cropped shape) takes its 10th percentile instead, at least the others' coarsest (+1e-5, as nnU-Net)."""
    target = np.percentile(spacings, 50, axis=0)
    sizes = np.percentile(cropped_shapes, 50, axis=0)
    worst = int(np.argmax(target))
    others = [axis for axis in range(len(target)) if axis != worst]
    coarse = target[worst] > ANISOTROPY * max(target[others])
    thin = sizes[worst] * ANISOTROPY < min(sizes[others])
    median = [float(s) for s in target]
    if not (coarse and thin):
        why = "median spacing per axis"
        if coarse:
            why += f" ({'xyz'[worst]} > 3x coarser, but not < 1/3 of the voxels: no anisotropy rule)"
        return median, why
    tenth = float(np.percentile(spacings[:, worst], 10))
    if tenth < max(target[others]):
        tenth = max(float(max(target[others])), tenth) + 1e-5
    target[worst] = tenth
    return ([float(s) for s in target], f"median per axis; {'xyz'[worst]} is > 3x coarser with < 1/3 of the voxels: "
            f"its 10th percentile {tenth:.4g} mm (median {median[worst]:.4g})")


def resampled_median_shape(spacings: np.ndarray, cropped_shapes: np.ndarray, spacing: Sequence[float]) -> list[float]:
    """The per-axis median of every case's cropped shape resampled to `spacing` (each rounded, as nnU-Net)."""
    shapes = np.round(cropped_shapes * spacings / np.asarray(spacing, dtype=float))
    return [float(v) for v in np.median(shapes, axis=0)]


def initial_patch(spacing: Sequence[float], median_shape: Sequence[float]) -> list[int]:
    """A patch of 256^3 voxels' volume that is isotropic in mm, capped at the median shape per axis."""
    inverse = 1.0 / np.asarray(spacing, dtype=float)
    isotropic = inverse * (PATCH_VOXEL_BUDGET / float(np.prod(inverse))) ** (1 / 3)
    return [int(min(round(float(a)), b)) for a, b in zip(isotropic, median_shape)]


def axis_to_shrink(patch: Sequence[int], median_shape: Sequence[float], spacing: Sequence[float]) -> int:
    """The axis whose patch is largest relative to the median shape; a tie goes where nnU-Net's would (its axis
    order is the coarsest axis first, then the others in reversed RAS order, and it takes the last of the tied)."""
    ratios = [p / m for p, m in zip(patch, median_shape)]
    coarsest = max(range(len(spacing)), key=lambda axis: (spacing[axis], axis))
    order = [coarsest, *sorted((a for a in range(len(spacing)) if a != coarsest), reverse=True)]
    tied = [axis for axis in order if math.isclose(ratios[axis], max(ratios))]
    return tied[-1]


def batch_cap(n_voxels_dataset: float, patch: Sequence[int]) -> int:
    """The batch that covers 5% of the dataset's voxels (rounded): a larger batch sees too much of it at once."""
    return round(n_voxels_dataset * MAX_DATASET_COVERED / float(np.prod(patch, dtype=np.float64)))


def batch_size(fitting: int, cap: int) -> tuple[int, str]:
    """The batch: what fits the memory target, at most the 5% cap, at least 2."""
    chosen = max(min(fitting, cap), MIN_BATCH)
    if chosen == MIN_BATCH and min(fitting, cap) < MIN_BATCH:
        return chosen, f"at least {MIN_BATCH} (fits {fitting}, 5% of the dataset's voxels: {cap})"
    if cap < fitting:
        return chosen, f"5% of the dataset's voxels per step (memory fits {fitting})"
    return chosen, f"what fits the memory target (5% cap: {cap})"


def normalization(modality: str, intensity: dict, median_relative_size: float, channels: int) -> tuple[dict, str]:
    """CT: clip to the foreground's 0.5-99.5 percentiles and z-score with its mean and sd; other modalities: z-score
    per channel, over the nonzero region only when cropping to it removes at least a quarter of the volume."""
    if modality.upper() == "CT" and channels == 1:
        low, high = float(intensity["percentile_00_5"]), float(intensity["percentile_99_5"])
        settings = {"scheme": "ct", "clip": [round(low, 4), round(high, 4)],
                    "mean": round(float(intensity["mean"]), 4), "std": round(max(float(intensity["std"]), 1e-8), 4)}
        return settings, "CT: clip to the foreground's 0.5-99.5 percentiles, z-score by its mean and sd"
    nonzero = median_relative_size < RELATIVE_SIZE_FOR_MASK
    why = (f"z-score per channel; cropping to nonzero keeps {median_relative_size:.0%} of the median volume: "
           + ("over the nonzero region" if nonzero else "over the whole volume (the nonzero mask would be noise)"))
    return {"scheme": "zscore", "nonzero": bool(nonzero)}, why


def next_lowres_spacing(spacing: Sequence[float]) -> list[float]:
    """One step coarser: axes more than 2x finer than the coarsest grow by 3%, or all of them when none is."""
    values = np.asarray(spacing, dtype=float)
    finer = values.max() / values > 2
    values[finer if finer.any() else np.ones_like(finer)] *= LOWRES_STEP
    return [float(v) for v in values]
