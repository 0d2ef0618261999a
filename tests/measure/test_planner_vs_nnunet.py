"""`seg plan`'s planner against nnU-Net v2's own plans of the same synthetic datasets (the anchor fixtures written
by `benchmarks/nnunet_anchor.py`): planned from nnU-Net's fingerprint, seg must choose nnU-Net's spacing and
normalisation exactly, its patch within one divisor step per axis, its number of stages and its pooling order
(the strides per stage), and a lower-resolution stage exactly where nnU-Net plans one."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.data.fingerprint import CaseFingerprint, DatasetFingerprint
from segmentation.measure.plan_memory import MetaEstimate
from segmentation.measure.planner import NetworkSpec, plan_dataset
from segmentation.model.topology import unet_topology

from .nnunet_fixtures import fixture_names, load_fixture

NNUNET_TARGET = 8 * 2**30  # nnU-Net's default GPU memory target, as seg plan's default without a GPU
MEMORY = MetaEstimate()  # one for every fixture: candidates seen once are remembered


def fingerprint_of(fixture: dict) -> DatasetFingerprint:
    """nnU-Net's fingerprint as seg's (RAS order; the statistics nnU-Net pooled)."""
    cases = [CaseFingerprint(f"case{i}", tuple(spacing), tuple(shape), tuple(shape), {}, [])
             for i, (spacing, shape) in enumerate(zip(fixture["case_spacings"], fixture["case_shapes_after_crop"]))]
    modality = ["CT" if norm["scheme"] == "CTNormalization" else "MRI" for norm in fixture["normalization"]]
    return DatasetFingerprint([f"c{i}" for i in range(len(modality))], modality, cases,
                              fixture["median_relative_size_after_cropping"], fixture["intensity"])


def network_of(fixture: dict) -> NetworkSpec:
    return NetworkSpec("dynunet", len(fixture["normalization"]), 3, deep_supervision=True)


def planned(name: str, budget: float = NNUNET_TARGET):
    fixture = load_fixture(name)
    return fixture, plan_dataset(fingerprint_of(fixture), network_of(fixture), MEMORY, budget)


def assert_stage_agrees(ours, theirs: dict, same_spacing: bool = True) -> None:
    if same_spacing:
        np.testing.assert_allclose(ours.spacing, theirs["spacing"], rtol=1e-5)
    assert ours.topology.stages == theirs["n_stages"]
    assert ours.topology.strides == theirs["strides"]
    assert ours.topology.kernels == theirs["kernel_sizes"]
    steps = [abs(a - b) / step for a, b, step in zip(ours.patch_size, theirs["patch_size"], ours.topology.divisor)]
    assert max(steps) <= 1, f"patch {ours.patch_size} vs nnU-Net's {theirs['patch_size']}"


@pytest.mark.unit
@pytest.mark.parametrize("name", fixture_names())
def test_the_plan_agrees_with_nnunet(name):
    fixture, plan = planned(name)
    assert_stage_agrees(plan.fullres, fixture)
    assert (plan.lowres is None) == (fixture["lowres"] is None)
    if plan.lowres is not None:  # its spacing follows from the full-resolution patch: the same only for the same patch
        assert_stage_agrees(plan.lowres, fixture["lowres"], plan.fullres.patch_size == fixture["patch_size"])
    norm = fixture["normalization"][0]
    if norm["scheme"] == "CTNormalization":
        stats = fixture["intensity"][0]
        assert plan.normalization["scheme"] == "ct"
        np.testing.assert_allclose(plan.normalization["clip"], [stats["percentile_00_5"], stats["percentile_99_5"]],
                                   atol=1e-4)
        np.testing.assert_allclose([plan.normalization["mean"], plan.normalization["std"]],
                                   [stats["mean"], stats["std"]], atol=1e-4)
    else:
        assert plan.normalization == {"scheme": "zscore", "nonzero": norm["use_mask"]}


@pytest.mark.unit
def test_given_nnunets_full_resolution_patch_the_lower_resolution_is_nnunets():
    """On the large set seg's float32 estimate keeps the patch one step smaller in y than nnU-Net's constant does
    at 8 GB (so its lower resolution must be coarser to cover a quarter of the image); at the memory that seg
    estimates for nnU-Net's patch, both stages are nnU-Net's, the lower resolution's spacing included."""
    fixture = load_fixture("large")
    _, at_8_gb = planned("large")
    assert at_8_gb.fullres.patch_size != fixture["patch_size"] and at_8_gb.lowres is not None
    assert min(at_8_gb.lowres.spacing) > max(fixture["lowres"]["spacing"])
    topology = unet_topology(fixture["spacing"], fixture["patch_size"])
    budget = MEMORY.figures(network_of(fixture).candidate(topology)).bytes_for(2)
    _, plan = planned("large", budget)
    assert plan.fullres.patch_size == fixture["patch_size"]
    assert plan.lowres is not None
    assert_stage_agrees(plan.lowres, fixture["lowres"])
