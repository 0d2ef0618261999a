"""How training batches are loaded: page-locked memory where the copy to a CUDA device can then be asynchronous."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from segmentation.data.loaders import batches_per_epoch, pins_memory, training_loader

pytestmark = pytest.mark.unit


def test_batches_built_in_host_memory_are_pinned_for_a_cuda_device_only():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert pins_memory(cuda, "memory") and pins_memory(cuda, "store") and pins_memory(cuda, "none")
    assert not pins_memory(cuda, "gpu")  # (built on the device: nothing to copy)
    assert not pins_memory(cpu, "memory")
    dataset = [{"image": torch.zeros(1, 4, 4, 4)} for _ in range(4)]
    assert training_loader(dataset, 2, seed=0, start_epoch=0, stored=False, workers=0, pin=True).pin_memory
    assert not training_loader(dataset, 2, seed=0, start_epoch=0, stored=False, workers=0).pin_memory



@pytest.mark.parametrize("volumes, per_batch, world, steps", [(4, 2, 1, None), (7, 2, 1, None), (7, 3, 2, None),
                                                              (5, 1, 3, None), (6, 2, 2, 5)])
def test_batches_per_epoch_is_what_the_training_loader_yields(volumes, per_batch, world, steps):
    """A per-step schedule's horizon is counted without building the loader: the count must be the loader's."""
    expected = batches_per_epoch(volumes, per_batch, world, steps)
    for rank in range(world):
        trainer = SimpleNamespace(global_rank=rank, world_size=world)
        loader = training_loader(list(range(volumes)), per_batch, 0, 0, False, 0, trainer, steps_per_epoch=steps)
        assert len(loader) == expected
