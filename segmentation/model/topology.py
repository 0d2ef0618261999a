"""The shape of a U-Net from its patch and voxel spacing: where each stage pools and which axes its kernels span.

nnU-Net's rule (v2 `get_pool_and_conv_props`), which `seg plan` and the DynUNet defaults share:

- an axis is pooled while its feature map keeps at least `2 * min_edge` voxels (8 by default) and its current
  spacing is less than twice the finest spacing among the axes still poolable; a single poolable axis is pooled only
  while it has at least `3 * min_edge` voxels;
- a stage's kernel spans an axis (3) once that axis's current spacing is within 2x of the finest, else it is 1
  (thick slices are not convolved across until pooling has made the in-plane voxels as coarse); once 3, it stays 3;
- the bottleneck's kernel is 3 on every axis;
- the patch must be divisible by 2^(pools) per axis; a patch that is not is padded up to the next multiple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

MIN_EDGE = 4  # nnU-Net's UNet_featuremap_min_edge_length: the bottleneck keeps at least 4 voxels per axis


@dataclass(frozen=True)
class Topology:
    """Strides and kernels per stage (the first stride is 1 on every axis) and the patch they fit.

    Args:
        strides: per stage, the pooling stride per axis (2 or 1); `strides[0]` is all 1.
        kernels: per stage, the convolution kernel size per axis (3 or 1).
        patch_size: the patch padded up to a multiple of `divisor` per axis.
    """

    strides: list[list[int]]
    kernels: list[list[int]]
    patch_size: list[int]

    @property
    def stages(self) -> int:
        """Resolution levels of the encoder (the bottleneck included)."""
        return len(self.strides)

    @property
    def pools(self) -> list[int]:
        """How often each axis is halved."""
        return [sum(1 for stride in self.strides if stride[axis] == 2) for axis in range(len(self.patch_size))]

    @property
    def divisor(self) -> list[int]:
        """What each patch axis must be a multiple of: 2^(its pools)."""
        return [2**pools for pools in self.pools]


def poolable_axes(spacing: Sequence[float], size: Sequence[float], min_edge: int) -> list[int]:
    """The axes one more stage pools: large enough, and not more than 2x coarser than the finest of those."""
    large = [axis for axis in range(len(size)) if size[axis] >= 2 * min_edge]
    if not large:
        return []
    finest = min(spacing[axis] for axis in large)
    axes = [axis for axis in large if spacing[axis] / finest < 2]
    if len(axes) == 1 and size[axes[0]] < 3 * min_edge:
        return []
    return axes


def pad_to_multiple(patch_size: Sequence[int], divisor: Sequence[int]) -> list[int]:
    """Each axis rounded up to a multiple of its divisor."""
    return [math.ceil(size / step) * step for size, step in zip(patch_size, divisor)]


def unet_topology(spacing: Sequence[float], patch_size: Sequence[int], min_edge: int = MIN_EDGE,
                  max_stages: Optional[int] = None) -> Topology:
    """nnU-Net's strides and kernels for `patch_size` voxels of `spacing` mm (see the module docstring);
    `max_stages` caps the levels (None: as deep as the rule allows)."""
    current_spacing, size = [float(s) for s in spacing], [float(n) for n in patch_size]
    strides, kernels = [[1] * len(size)], []
    kernel = [1] * len(size)
    while max_stages is None or len(strides) < max_stages:
        axes = poolable_axes(current_spacing, size, min_edge)
        if not axes:
            break
        finest = min(current_spacing)
        kernel = [3 if k == 3 or current_spacing[axis] / finest < 2 else 1 for axis, k in enumerate(kernel)]
        kernels.append(list(kernel))
        stride = [2 if axis in axes else 1 for axis in range(len(size))]
        for axis in axes:
            current_spacing[axis] *= 2
            size[axis] = math.ceil(size[axis] / 2)
        strides.append(stride)
    kernels.append([3] * len(size))  # the bottleneck
    pools = [sum(1 for stride in strides if stride[axis] == 2) for axis in range(len(size))]
    return Topology(strides, kernels, pad_to_multiple(patch_size, [2**p for p in pools]))
