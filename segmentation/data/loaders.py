"""The data loaders of a `VolumeDataModule`: training batches (epoch-seeded, rank-aware, resumable inside an epoch)
and whole volumes one at a time (validation, test, prediction), each case on exactly one rank."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from monai.data import DataLoader, Dataset

from ..core.internals import batches_trained_this_epoch
from ..core.memory import reuse_freed_memory, reuse_freed_memory_in_worker
from .patches import StoredPatches, StoredVolumes
from .sampling import EpochSeededSampler, SeededItems, ShardSampler

# what the loaders read: MONAI datasets (cache none and memory, test and predict) or the store's (store and gpu)
LoaderDataset = Union[Dataset, StoredPatches, StoredVolumes, SeededItems]


def placement(trainer: Any) -> tuple[int, int]:
    """(global rank, world size) of this process: (0, 1) without a trainer."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


def pins_memory(device: torch.device, cache: str) -> bool:
    """Whether training batches go through page-locked memory: on a CUDA device, for batches built in host memory
    (then the copy to the device is asynchronous, Lightning's `non_blocking`); `cache: gpu` builds them there."""
    return device.type == "cuda" and cache != "gpu"


def training_loader(dataset: LoaderDataset, volumes_per_batch: int, seed: int, start_epoch: int, stored: bool,
                    workers: int, trainer: Any = None, consumed: int = 0, pin: bool = False,
                    steps_per_epoch: Optional[int] = None) -> DataLoader:
    """Shuffled batches of `volumes_per_batch` volumes' patches, this rank's share, starting `start_epoch` after the
    first `consumed` positions of its permutation (trained by all ranks before a resume inside the epoch); `pin`:
    through page-locked memory (`pins_memory`); `steps_per_epoch`: that many batches on every rank, of volumes
    drawn with replacement (`sampling`), instead of one pass over the volumes.

    Items are drawn by `(index, epoch)` and seed themselves from them (`sampling`), so workers may persist; the
    store's (`stored`) do, and reuse freed patch buffers (`core.memory`).
    """
    rank, world_size = placement(trainer)
    generator = torch.Generator()
    draws = None if steps_per_epoch is None else steps_per_epoch * volumes_per_batch * world_size
    sampler = EpochSeededSampler(len(dataset), seed, generator, start_epoch, rank, world_size, draws)
    sampler.resume_inside(start_epoch, consumed)
    if stored:
        reuse_freed_memory()  # patches of 32 MiB: see core.memory (forked workers inherit it)
    return DataLoader(
        dataset,
        batch_size=volumes_per_batch,
        sampler=sampler,
        generator=generator,
        num_workers=workers,
        persistent_workers=stored and workers > 0,
        pin_memory=pin,
        **({"worker_init_fn": reuse_freed_memory_in_worker} if stored else {}),  # (else MONAI's, which seeds)
    )


def batches_per_epoch(volumes: int, volumes_per_batch: int, world_size: int = 1,
                      steps_per_epoch: Optional[int] = None) -> int:
    """Training batches one rank runs per epoch: what `training_loader` yields, known without building it (a
    per-step schedule needs it before the loops are restored, when a loader built then would start wrong)."""
    if steps_per_epoch is not None:
        return steps_per_epoch
    return math.ceil(math.ceil(volumes / max(1, world_size)) / max(1, volumes_per_batch))


def volume_loader(dataset: LoaderDataset, workers: int, trainer: Any = None) -> DataLoader:
    """Whole volumes one at a time (their shapes differ); under DDP each rank takes every world-size-th case."""
    rank, world_size = placement(trainer)
    sampler = ShardSampler(len(dataset), rank, world_size) if world_size > 1 else None
    return DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=workers)


def training_position(trainer: Any, volumes_per_batch: int) -> dict:
    """Where a fit stands inside its epoch, for the checkpoint: epoch, batches this rank trained in it, world size,
    and the positions of the epoch's permutation all ranks consumed."""
    batches, world = batches_trained_this_epoch(trainer), int(trainer.world_size)
    return {"epoch": int(trainer.current_epoch), "batches": batches, "world_size": world,
            "consumed": batches * volumes_per_batch * world}


def consumed_before(position: Optional[dict], start_epoch: int) -> int:
    """Positions of `start_epoch`'s permutation a checkpoint's `position` says were trained (0 for another epoch)."""
    return int(position.get("consumed", 0)) if position and position.get("epoch") == start_epoch else 0


def volumes_per_batch(batch_size: int, samples_per_volume: int) -> int:
    """Volumes a training batch draws its patches from (`samples_per_volume` patches come from each)."""
    return max(1, batch_size // samples_per_volume)
