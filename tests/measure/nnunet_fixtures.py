"""Reader of the nnU-Net anchor fixtures (`benchmarks/nnunet_anchor.py` writes them): nnU-Net v2's own
`dataset_fingerprint.json` and `nnUNetPlans.json` per synthetic dataset, with every per-axis list in seg's RAS order.

Axis orders. nnU-Net reads a NIfTI with SimpleITK, whose arrays are the NIfTI voxel array with its axes
reversed (z, y, x); the fingerprint's per-case spacings and shapes are in that reading order. The plans then
permute it by `transpose_forward` (the coarsest axis first): plan lists (spacing, patch, median shape,
kernels, strides) are in the transposed order. seg's RAS order is the voxel array's order once reoriented to
RAS; `source.json` records, per fixture, which RAS axis each voxel-array axis runs along (`array_to_ras`,
from the files' affines: the identity for seg's synthetic writers, whose affines are diagonal).

No nnU-Net import: the fixtures are plain JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

FIXTURES = Path(__file__).parent / "fixtures" / "nnunet"
FINGERPRINT = "dataset_fingerprint.json"
PLANS = "nnUNetPlans.json"
SOURCE = "source.json"


def fixture_names(root: Path = FIXTURES) -> list[str]:
    """The datasets that have a fixture folder under `root`, sorted."""
    return sorted(p.name for p in root.iterdir() if (p / PLANS).is_file())


def to_ras(
    values: Sequence[Any], transpose_forward: Optional[Sequence[int]] = None, array_to_ras: Sequence[int] = (0, 1, 2)
) -> list[Any]:
    """nnU-Net's per-axis list `values` in seg's RAS order.

    `transpose_forward`: the plans' permutation when `values` is a plan list (transposed order); None for a
    fingerprint list (SimpleITK reading order). `array_to_ras[j]`: the RAS axis of NIfTI voxel-array axis j.
    """
    values = list(values)
    reading = values
    if transpose_forward is not None:
        reading = [None] * 3
        for position, axis in enumerate(transpose_forward):
            reading[axis] = values[position]
    array = reading[::-1]  # SimpleITK's (z, y, x) is the NIfTI voxel array's axes reversed
    ras: list[Any] = [None] * 3
    for axis, value in enumerate(array):
        ras[array_to_ras[axis]] = value
    return ras


def configuration(plans: dict, name: str) -> Optional[dict]:
    """Plans configuration `name` with what it inherits merged in (None when nnU-Net did not plan it)."""
    configs = plans["configurations"]
    if name not in configs:
        return None
    config = dict(configs[name])
    if parent := config.pop("inherits_from", None):
        config = {**configuration(plans, parent), **config}  # type: ignore[dict-item]
    return config


def stage_plan(config: dict, transpose: Sequence[int], array_to_ras: Sequence[int]) -> dict:
    """A 3d configuration's spacing, median shape, patch, batch, stages, kernels and strides (RAS order)."""
    arch = config["architecture"]["arch_kwargs"]

    def ras(values: Sequence[Any]) -> list[Any]:
        return to_ras(values, transpose, array_to_ras)

    return {
        "spacing": ras(config["spacing"]),
        "median_shape": ras(config["median_image_size_in_voxels"]),
        "patch_size": ras(config["patch_size"]),
        "batch_size": config["batch_size"],
        "n_stages": arch["n_stages"],
        "kernel_sizes": [ras(k) for k in arch["kernel_sizes"]],
        "strides": [ras(s) for s in arch["strides"]],
        "features_per_stage": arch["features_per_stage"],
    }


def load_fixture(name: str, root: Path = FIXTURES) -> dict:
    """nnU-Net's plan (3d_fullres, and 3d_lowres or None) and fingerprint of dataset `name`, in RAS order.

    Keys: spacing, median_shape, patch_size, batch_size, n_stages, kernel_sizes, strides (per stage),
    features_per_stage, normalization (per channel: scheme, use_mask), intensity (per channel: nnU-Net's
    foreground intensity properties), channel_names, lowres (the same plan keys, or None),
    original_median_spacing, original_median_shape, case_spacings, case_shapes_after_crop,
    median_relative_size_after_cropping, transpose_forward, array_to_ras, source (source.json).
    """
    folder = root / name
    plans = json.loads((folder / PLANS).read_text())
    fingerprint = json.loads((folder / FINGERPRINT).read_text())
    source = json.loads((folder / SOURCE).read_text())
    array_to_ras = source.get("array_to_ras", [0, 1, 2])
    transpose = plans["transpose_forward"]
    fullres = configuration(plans, "3d_fullres")
    assert fullres is not None, f"{folder / PLANS} has no 3d_fullres configuration"
    lowres = configuration(plans, "3d_lowres")
    channels = fullres["normalization_schemes"]
    intensity = plans["foreground_intensity_properties_per_channel"]
    return {
        **stage_plan(fullres, transpose, array_to_ras),
        "normalization": [{"scheme": scheme, "use_mask": bool(mask)}
                          for scheme, mask in zip(channels, fullres["use_mask_for_norm"])],
        "intensity": [intensity[str(c)] for c in range(len(channels))],
        "channel_names": source.get("channel_names"),
        "lowres": None if lowres is None else stage_plan(lowres, transpose, array_to_ras),
        "original_median_spacing": to_ras(plans["original_median_spacing_after_transp"], transpose, array_to_ras),
        "original_median_shape": to_ras(plans["original_median_shape_after_transp"], transpose, array_to_ras),
        "case_spacings": [to_ras(s, None, array_to_ras) for s in fingerprint["spacings"]],
        "case_shapes_after_crop": [to_ras(s, None, array_to_ras) for s in fingerprint["shapes_after_crop"]],
        "median_relative_size_after_cropping": fingerprint["median_relative_size_after_cropping"],
        "transpose_forward": transpose,
        "array_to_ras": array_to_ras,
        "source": source,
    }
