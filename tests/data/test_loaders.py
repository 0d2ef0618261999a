"""How training batches are loaded: page-locked memory where the copy to a CUDA device can then be asynchronous."""

from __future__ import annotations

import pytest
import torch

from segmentation.data.loaders import pins_memory, training_loader

pytestmark = pytest.mark.unit


def test_batches_built_in_host_memory_are_pinned_for_a_cuda_device_only():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert pins_memory(cuda, "memory") and pins_memory(cuda, "store") and pins_memory(cuda, "none")
    assert not pins_memory(cuda, "gpu")  # (built on the device: nothing to copy)
    assert not pins_memory(cpu, "memory")
    dataset = [{"image": torch.zeros(1, 4, 4, 4)} for _ in range(4)]
    assert training_loader(dataset, 2, seed=0, start_epoch=0, stored=False, workers=0, pin=True).pin_memory
    assert not training_loader(dataset, 2, seed=0, start_epoch=0, stored=False, workers=0).pin_memory

