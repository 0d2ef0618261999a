"""The planner's measured memory model on a real CUDA device (skipped without one): real steps give positive
figures that grow with the batch and the patch, and the meta estimate (float32) is of the measured order."""

from __future__ import annotations

import pytest
import torch

from segmentation.measure.plan_memory import MeasuredStep, MetaEstimate
from segmentation.measure.planner import NetworkSpec
from segmentation.model.topology import unet_topology


@pytest.mark.gpu
def test_measured_steps_grow_with_the_patch_and_the_estimate_bounds_them():
    memory = MeasuredStep(torch.device("cuda"), torch.bfloat16)
    network = NetworkSpec("dynunet", 1, 3, deep_supervision=True)
    small = memory.figures(network.candidate(unet_topology((1, 1, 1), (64, 64, 64))))
    large = memory.figures(network.candidate(unet_topology((1, 1, 1), (96, 96, 96))))
    assert 0 < small.per_sample < large.per_sample and small.samples_per_second and small.samples_per_second > 0
    total = torch.cuda.get_device_properties(0).total_memory
    assert small.bytes_for(4) > small.bytes_for(2) and large.bytes_for(2) < total
    estimate = MetaEstimate().figures(network.candidate(unet_topology((1, 1, 1), (96, 96, 96))))
    assert 0.25 < estimate.per_sample / large.per_sample < 4  # the estimate is of the measured order
