"""nnU-Net's pooling and kernel rule (model.topology), on patches that trigger each part of it and on ones that do
not."""

from __future__ import annotations

import pytest

from segmentation.model.networks import dynunet_plan
from segmentation.model.topology import unet_topology


@pytest.mark.unit
def test_thick_slices_are_pooled_and_convolved_only_once_in_plane_is_as_coarse():
    # the liver case: 0.8 x 0.8 x 2.5 mm, 160 x 160 x 64 voxels (nnU-Net v2 plans exactly this)
    plan = unet_topology((0.8, 0.8, 2.5), (160, 160, 64))
    assert plan.kernels[0] == [3, 3, 1]  # z is > 2x coarser: no kernel across slices yet
    assert plan.strides[1] == [2, 2, 1]  # nor pooling along z
    assert plan.strides[2] == [2, 2, 2]  # 1.6 x 1.6 x 2.5 mm: z within 2x of the finest, pooled from now on
    assert plan.kernels[1:] == [[3, 3, 3]] * 5 and plan.stages == 6
    assert plan.divisor == [32, 32, 16] and plan.patch_size == [160, 160, 64]


@pytest.mark.unit
def test_isotropic_voxels_pool_every_axis_from_the_first_stage():
    plan = unet_topology((1.0, 1.0, 1.0), (128, 128, 128))
    assert plan.strides == [[1, 1, 1]] + [[2, 2, 2]] * 5 and plan.kernels == [[3, 3, 3]] * 6


@pytest.mark.unit
def test_an_axis_stops_at_8_voxels_and_a_lone_axis_needs_12():
    plan = unet_topology((1.0, 1.0, 1.0), (64, 64, 8))
    assert [s[2] for s in plan.strides] == [1, 2, 1, 1, 1]  # 8 -> 4: below 8 voxels, never pooled again
    lone = unet_topology((1.0, 1.0, 1.0), (11, 4, 4))
    assert lone.strides == [[1, 1, 1]]  # one poolable axis with < 12 voxels: no stage
    assert unet_topology((1.0, 1.0, 1.0), (12, 4, 4)).strides == [[1, 1, 1], [2, 1, 1]]


@pytest.mark.unit
def test_a_patch_that_is_not_a_multiple_is_padded_up():
    plan = unet_topology((1.0, 1.0, 1.0), (100, 100, 100))
    assert plan.divisor == [16, 16, 16] and plan.patch_size == [112, 112, 112]  # 100 -> 50 -> 25 -> 13 -> 7


@pytest.mark.unit
def test_dynunet_defaults_follow_the_rule_with_spacing_when_given():
    kernels, strides = dynunet_plan((160, 160, 64), (0.8, 0.8, 2.5))
    assert kernels[0] == [3, 3, 1] and strides[1] == [2, 2, 1]
    assert dynunet_plan((160, 160, 64))[1][1] == [2, 2, 2]  # without a spacing: isotropic voxels
