"""The nnU-Net anchor fixtures (nnU-Net v2's own fingerprint and plans of seg's synthetic datasets, written by
benchmarks/nnunet_anchor.py) as the reader returns them: in seg's RAS axis order, consistent, and what nnU-Net
planned for each dataset (the values below are nnU-Net's outputs, read from the fixtures)."""

from __future__ import annotations

import math

import pytest

from .nnunet_fixtures import fixture_names, load_fixture, to_ras

pytestmark = pytest.mark.unit  # pure logic: JSON files only

NAMES = fixture_names()


def test_every_dataset_has_a_fixture():
    assert NAMES == sorted(["demo", "liver", "brats", "totalseg", "anisotropic", "large"])


def test_to_ras_undoes_the_reading_order_and_the_transpose():
    reading = ["z", "y", "x"]  # SimpleITK's order: the voxel array's axes reversed
    assert to_ras(reading) == ["x", "y", "z"]
    transpose = [2, 0, 1]
    transposed = [reading[axis] for axis in transpose]
    assert to_ras(transposed, transpose) == ["x", "y", "z"]
    assert to_ras(reading, None, array_to_ras=(1, 0, 2)) == ["y", "x", "z"]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_consistent(name):
    f = load_fixture(name)
    plans = [f] + ([f["lowres"]] if f["lowres"] else [])
    for plan in plans:
        assert len(plan["kernel_sizes"]) == len(plan["strides"]) == plan["n_stages"]
        assert plan["strides"][0] == [1, 1, 1]
        for axis in range(3):
            downsampling = math.prod(stride[axis] for stride in plan["strides"])
            assert plan["patch_size"][axis] % downsampling == 0
    channels = f["channel_names"]
    assert len(f["normalization"]) == len(f["intensity"]) == len(channels)
    assert len(f["case_spacings"]) == len(f["case_shapes_after_crop"]) > 0
    for norm, channel in zip(f["normalization"], channels):
        assert norm["scheme"] == ("CTNormalization" if channel == "CT" else "ZScoreNormalization")
    for properties in f["intensity"]:
        assert properties["percentile_00_5"] <= properties["median"] <= properties["percentile_99_5"]


def test_demo():
    f = load_fixture("demo")
    assert f["spacing"] == pytest.approx([1.5, 1.5, 2.0])
    assert f["patch_size"] == [48, 48, 48]
    assert f["normalization"] == [{"scheme": "CTNormalization", "use_mask": False}]
    assert f["lowres"] is None


def test_liver_keeps_its_anisotropic_spacing_and_pools_in_plane_first():
    f = load_fixture("liver")
    for spacing in f["case_spacings"]:
        assert spacing == pytest.approx([0.8, 0.8, 2.5])  # the fingerprint's 2.5 mm axis is RAS z
    assert f["spacing"] == pytest.approx([0.8, 0.8, 2.5])
    assert f["patch_size"] == [160, 160, 64]  # the whole volume
    assert f["kernel_sizes"][0] == [3, 3, 1]
    assert f["strides"][1] == [2, 2, 1]
    assert f["lowres"] is None


def test_brats_zscores_each_channel_over_the_brain():
    f = load_fixture("brats")
    assert f["spacing"] == pytest.approx([1.0, 1.0, 1.0])
    assert f["normalization"] == [{"scheme": "ZScoreNormalization", "use_mask": True}] * 4
    assert f["median_relative_size_after_cropping"] < 0.75


def test_totalseg():
    f = load_fixture("totalseg")
    assert f["spacing"] == pytest.approx([1.5, 1.5, 3.0])
    assert f["lowres"] is None


def test_anisotropic_takes_the_10th_percentile_of_the_coarse_axis():
    f = load_fixture("anisotropic")
    z = sorted(s[2] for s in f["case_spacings"])
    assert f["original_median_spacing"][2] == pytest.approx(5.0)
    assert f["spacing"][:2] == pytest.approx([0.7, 0.7])
    assert f["spacing"][2] == pytest.approx(z[0] + 0.7 * (z[1] - z[0]))  # np.percentile(z, 10) = 3.7


def test_large_plans_a_lowres_stage():
    f = load_fixture("large")
    assert f["lowres"] is not None
    assert all(low > full for low, full in zip(f["lowres"]["spacing"], f["spacing"]))
    assert math.prod(f["patch_size"]) < 0.25 * math.prod(f["median_shape"])
