"""The planner's rules on constructed datasets, each one that triggers the rule and one that does not:
anisotropy, the 5% batch cap, the nonzero mask for z-scores, the memory target, the lower-resolution stage."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.core.errors import SegError
from segmentation.data.fingerprint import CaseFingerprint, DatasetFingerprint
from segmentation.measure import plan_rules as rules
from segmentation.measure.plan_memory import Candidate, MetaEstimate, StepFigures, StepMemory
from segmentation.measure.planner import NetworkSpec, plan_dataset
from segmentation.model.topology import unet_topology

CT_STATS = {"mean": 100.0, "std": 20.0, "median": 100.0, "min": -50.0, "max": 300.0, "percentile_00_5": 10.0,
            "percentile_99_5": 180.0}


def fingerprint(spacings, shapes, modality="CT", relative_size=1.0, channels=1) -> DatasetFingerprint:
    cases = [CaseFingerprint(f"c{i}", tuple(sp), tuple(sh), tuple(sh), {}, []) for i, (sp, sh) in
             enumerate(zip(spacings, shapes))]
    return DatasetFingerprint([modality] * channels, [modality] * channels, cases, relative_size,
                              [dict(CT_STATS)] * channels)


class VoxelMemory(StepMemory):
    """A memory model of known figures: `bytes_per_voxel` per patch voxel per sample, nothing fixed."""

    def __init__(self, bytes_per_voxel: float):
        super().__init__()
        self.bytes_per_voxel = bytes_per_voxel

    def measure(self, candidate: Candidate) -> StepFigures:
        return StepFigures(per_sample=self.bytes_per_voxel * float(np.prod(candidate.patch_size)), fixed=0.0)

    def describe(self) -> str:
        return "test"


UNET = NetworkSpec("dynunet", 1, 3)


@pytest.mark.unit
def test_thick_slices_take_their_10th_percentile_only_when_also_few():
    spacings = np.array([[0.7, 0.7, z] for z in (3, 4, 5, 5, 5, 5, 6, 6)])
    few = np.array([[128, 128, 20]] * 8)
    spacing, why = rules.target_spacing(spacings, few)
    assert spacing[:2] == [0.7, 0.7] and spacing[2] == pytest.approx(np.percentile([3, 4, 5, 5, 5, 5, 6, 6], 10))
    assert "10th percentile" in why
    many = np.array([[128, 128, 60]] * 8)  # > 3x coarser, but 60 slices are not < 1/3 of 128
    assert rules.target_spacing(spacings, many)[0] == [0.7, 0.7, 5.0]


@pytest.mark.unit
def test_the_batch_is_capped_at_5_percent_of_the_dataset_and_never_below_2():
    small_memory = VoxelMemory(1.0)  # 1 byte per voxel: a 1 GiB target fits hundreds of 32^3 samples
    few_cases = plan_dataset(fingerprint([[1, 1, 1]] * 10, [[32, 32, 32]] * 10), UNET, small_memory, 2**30)
    assert few_cases.fullres.batch_size == 2  # 5% of 10 volumes is half a patch: the minimum of 2
    many = 2000
    many_cases = plan_dataset(fingerprint([[1, 1, 1]] * many, [[32, 32, 32]] * many), UNET, small_memory, 2**30)
    assert many_cases.fullres.batch_size == round(0.05 * many)  # the cap, not the memory, binds
    tight = plan_dataset(fingerprint([[1, 1, 1]] * many, [[32, 32, 32]] * many), UNET, VoxelMemory(1.0), 10 * 32**3)
    assert tight.fullres.batch_size == 10  # the memory binds below the cap


@pytest.mark.unit
def test_the_nonzero_mask_is_used_only_where_cropping_removes_a_quarter():
    cases = ([[1, 1, 1]] * 4, [[40, 40, 40]] * 4)
    cropped = plan_dataset(fingerprint(*cases, modality="MRI", relative_size=0.6, channels=4), UNET,
                           VoxelMemory(1.0), 2**30)
    assert cropped.normalization == {"scheme": "zscore", "nonzero": True}
    noise = plan_dataset(fingerprint(*cases, modality="MRI", relative_size=0.8, channels=4), UNET, VoxelMemory(1.0),
                         2**30)
    assert noise.normalization == {"scheme": "zscore", "nonzero": False}
    ct = plan_dataset(fingerprint(*cases, relative_size=0.6), UNET, VoxelMemory(1.0), 2**30)
    assert ct.normalization == {"scheme": "ct", "clip": [10.0, 180.0], "mean": 100.0, "std": 20.0}


@pytest.mark.unit
def test_the_patch_shrinks_to_the_memory_target_and_a_hopeless_target_is_refused():
    data = fingerprint([[1, 1, 1]] * 4, [[256, 256, 256]] * 4)
    roomy = plan_dataset(data, UNET, VoxelMemory(1.0), 2 * 256**3)
    assert roomy.fullres.patch_size == [256, 256, 256]
    tight = plan_dataset(data, UNET, VoxelMemory(1.0), 2 * 128**3)
    assert np.prod(tight.fullres.patch_size) * 2 <= 2 * 128**3 < np.prod(roomy.fullres.patch_size) * 2
    with pytest.raises(SegError, match="--memory-gb"):
        plan_dataset(data, UNET, VoxelMemory(1.0), 100)


@pytest.mark.unit
def test_a_lower_resolution_is_planned_only_when_the_patch_covers_under_a_quarter():
    big = plan_dataset(fingerprint([[1, 1, 1]] * 4, [[320, 320, 240]] * 4), UNET, VoxelMemory(1.0), 2 * 96**3)
    assert big.lowres is not None and min(big.lowres.spacing) > 1.0
    covered = np.prod(big.lowres.patch_size) / np.prod(big.lowres.median_shape)
    assert covered >= rules.LOWRES_THRESHOLD
    small = plan_dataset(fingerprint([[1, 1, 1]] * 4, [[96, 96, 96]] * 4), UNET, VoxelMemory(1.0), 2 * 96**3)
    assert small.lowres is None


@pytest.mark.unit
def test_the_meta_estimate_grows_with_the_patch_and_allocates_nothing():
    memory = MetaEstimate()
    small = memory.figures(NetworkSpec("dynunet", 1, 3).candidate(unet_topology((1, 1, 1), (32, 32, 32))))
    large = memory.figures(NetworkSpec("dynunet", 1, 3).candidate(unet_topology((1, 1, 1), (64, 64, 64))))
    assert 8 * small.per_sample > large.per_sample > 6 * small.per_sample  # ~ the voxels (8x), the new stage small
    assert large.fixed > small.fixed > 0  # one more stage: more parameters


@pytest.mark.unit
def test_architectures_without_a_plan_are_refused_by_name():
    with pytest.raises(SegError, match="--model.architecture swinunetr"):
        plan_dataset(fingerprint([[1, 1, 1]] * 2, [[32, 32, 32]] * 2), NetworkSpec("swinunetr", 1, 3),
                     VoxelMemory(1.0), 2**30)
