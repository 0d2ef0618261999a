"""Planned intensity normalisation (`--data.normalization`): nnU-Net's CTNormalization or ZScoreNormalization.

This is how seg applies nnU-Net's two schemes. `ct` clips to the foreground's percentile window and z-scores
with the foreground's mean and standard deviation; `zscore` z-scores each image, per channel, with its own
statistics (over its nonzero voxels with `nonzero: true`). `seg plan` fixes the CT statistics from the training
cases' foreground and writes them into the config, so they travel in every checkpoint's stored config: `seg
predict --ckpt_path` (and `seg export`) normalise new images with the training statistics, never their own.

    normalization: {scheme: ct, clip: [lo, hi], mean: m, std: s}   # clip, then (x - m) / s   (one channel)
    normalization: {scheme: zscore, nonzero: false}                # per channel; true: over nonzero voxels

Without it a dataset keeps its own `intensity_transform()`.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Mapping, Optional

from monai import transforms as mt

from ..core.errors import SegError

OPTION = "--data.normalization"
CT_FORM = "{scheme: ct, clip: [lo, hi], mean: m, std: s}"
ZSCORE_FORM = "{scheme: zscore, nonzero: false}"
KEYS = {"ct": ("scheme", "clip", "mean", "std"), "zscore": ("scheme", "nonzero")}


def refusal(problem: str, form: str = f"{CT_FORM} (one channel) or {ZSCORE_FORM}") -> SegError:
    """SegError naming the option, what is wrong and what to write."""
    return SegError(f"{OPTION}: {problem}; write {form}")


def normalization_transform(settings: Mapping[str, Any], channels: Optional[int]) -> mt.Transform:
    """The MONAI transform of `settings` for an image of `channels` channels: `ct` is exactly clip then (x - m) / s
    (one ScaleIntensityRanged, the export contract's `window` kind), `zscore` a per-channel NormalizeIntensityd.
    SegError naming the option for an unknown scheme or key, a missing or bad value, or `ct` on several channels
    (`channels` None: not known yet, not checked)."""
    if not isinstance(settings, Mapping):
        raise refusal(f"{settings!r} is not a mapping")
    scheme = settings.get("scheme")
    if scheme not in KEYS:
        raise refusal(f"unknown scheme {scheme!r} (schemes: {', '.join(KEYS)})")
    form = CT_FORM if scheme == "ct" else ZSCORE_FORM
    if unknown := sorted(set(settings) - set(KEYS[scheme])):
        raise refusal(f"unknown key {', '.join(map(str, unknown))} for scheme {scheme} (keys: "
                      f"{', '.join(KEYS[scheme])})", form)
    if scheme == "zscore":
        nonzero = settings.get("nonzero", False)
        if not isinstance(nonzero, bool):
            raise refusal(f"nonzero {nonzero!r} is not true or false", form)
        return mt.NormalizeIntensityd(keys="image", nonzero=nonzero, channel_wise=True)
    if missing := [key for key in KEYS["ct"] if key not in settings]:
        raise refusal(f"scheme ct needs {', '.join(missing)}", form)
    if channels is not None and channels != 1:
        raise refusal(f"scheme ct fixes the statistics of one channel and this dataset has {channels}",
                      f"{ZSCORE_FORM} (per channel), or leave it unset for the dataset's own")
    clip, mean, std = settings["clip"], number(settings["mean"], "mean"), number(settings["std"], "std")
    if isinstance(clip, (str, bytes)) or not hasattr(clip, "__len__") or len(clip) != 2:
        raise refusal(f"clip {clip!r} is not two numbers [lo, hi]", form)
    low, high = number(clip[0], "clip lo"), number(clip[1], "clip hi")
    if low >= high:
        raise refusal(f"clip [{low}, {high}] is empty: lo must be below hi", form)
    if std <= 0:
        raise refusal(f"std {std} is not positive", form)
    return mt.ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=(low - mean) / std,
                                   b_max=(high - mean) / std, clip=True)


def number(value: Any, name: str) -> float:
    """`value` as a finite float; SegError naming `name` otherwise (booleans and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise refusal(f"{name} {value!r} is not a finite number", CT_FORM)
    return float(value)
