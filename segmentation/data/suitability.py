"""What a checked dataset is fit for: labels that teach something, a patch that fits its volumes, and a spacing
that resamples them to a size a machine can hold. Each returns why not ("" when it is fit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .checks import CheckReport


def foreground_problem(report: CheckReport, root) -> str:
    """Why the labels can teach nothing ("" if some case holds foreground): every label file is background only."""
    if report.cases and report.label_voxels_cases and not any(value != 0 for value in report.label_voxels_cases):
        return (f"every label file of the {report.cases} cases in {root} holds background only (value 0): the "
                f"network would learn nothing and val/dice would stay 0. Check the label files (or, for "
                f"TotalSegmentator, --data.classes)")
    return ""


@dataclass(frozen=True)
class PatchRule:
    """What the network asks of a patch (set by the app once the model is built): every axis a multiple of
    `multiple` voxels and at least `smallest()` (the network's levels halve each axis; found only when needed)."""

    multiple: int = 1
    smallest: Callable[[], int] = lambda: 1


def patch_problem(report: CheckReport, patch_size: Sequence[int], spacing: Optional[Sequence[float]], root,
                  rule: PatchRule = PatchRule()) -> str:
    """Why `patch_size` suits none of the checked volumes of `root` ("" if it suits): larger than all along an axis
    (the volumes' extents at `spacing`, when they are resampled). The advice is a patch the network takes too, or,
    when the volumes are thinner than any such patch, says so."""
    if not report.extents:
        return ""
    too_large = resampling_problem(report, spacing)
    if too_large:
        return too_large
    largest = report.largest_extent(spacing)
    axes = [name for name, patch, most in zip("XYZ", patch_size, largest) if patch > most]
    if not axes:
        return ""
    resampled = f" at spacing {list(spacing)} mm" if spacing else ""
    problem = (f"--data.patch_size {list(patch_size)} is larger than every volume of {root} along "
               f"{', '.join(axes)} (the largest is {largest} voxels{resampled})")
    fitting = [min(patch, most) // rule.multiple * rule.multiple for patch, most in zip(patch_size, largest)]
    smallest = max(rule.smallest(), rule.multiple)
    if min(fitting) < smallest:
        return (f"{problem}, thinner than the smallest patch the network takes ({smallest} voxels per axis): pad "
                f"the volumes (seg trains 3D networks on 3D volumes), choose a finer --data.spacing, or fewer levels "
                f"with --model.network_kwargs")
    return f"{problem}: patches would be mostly padding. Use at most {fitting}"


MAX_RESAMPLED_VOXELS = 2**31  # beyond this one volume cannot be held or indexed (8 GiB of float32)


def resampling_problem(report: CheckReport, spacing: Optional[Sequence[float]]) -> str:
    """Why resampling to `spacing` would make some volume impossibly large ("" if none would be): usually a header
    whose voxel sizes are wrong (metres written as millimetres)."""
    if not spacing or not report.extent_files:
        return ""
    sizes = [[round(shape[a] * own[a] / spacing[a]) for a in range(3)] for shape, own in report.extents]
    index = max(range(len(sizes)), key=lambda i: float(np.prod(np.asarray(sizes[i], dtype=float))))
    if float(np.prod(np.asarray(sizes[index], dtype=float))) <= MAX_RESAMPLED_VOXELS:
        return ""
    own = list(report.extents[index][1])
    return (f"{report.extent_files[index]}: its voxels of {own} mm resampled to --data.spacing {list(spacing)} would "
            f"make a volume of {sizes[index]} voxels; check the header's voxel sizes (seg check-data lists them) or "
            f"choose a coarser --data.spacing")
