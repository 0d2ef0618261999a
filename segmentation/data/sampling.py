"""The samplers that make every random stream a function of (seed, epoch, rank) and let an epoch resume inside.

Training (`EpochSeededSampler`): the order of an epoch is one permutation of all training volumes, drawn
from (seed, epoch) alone, padded by wrapping to a multiple of the world size (DDP ranks must take the same
number of steps), and dealt out rank by rank: rank r takes positions r, r + W, r + 2W, ... A resumed run
starts the epoch it stopped in after the batches it had trained (`resume_inside`).

Validation, test and prediction (`ShardSampler`): each rank takes every W-th item, nothing padded, so no
case is scored twice.
"""

from __future__ import annotations

import math
import random
from typing import Iterator, Optional

import numpy as np
import torch
from monai import transforms as mt
from torch.utils.data import Sampler
from typing_extensions import override

RANK_STRIDE = 7_777_777  # separates the seeds of ranks (rank 0 keeps the single-process seeds)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of every random stream of one training epoch on one rank."""
    return (seed * 1_000_003 + epoch * 7919 + 12345 + rank * RANK_STRIDE) % 2**31


class EpochSeededSampler(Sampler):
    """This rank's share of the training volumes, in an order that is a function of (seed, epoch) alone.

    Lightning calls `set_epoch` at the start of every epoch (also the first epoch of a resumed run). That
    reseeds, from (seed, epoch, rank): the data loader's generator (the seeds of its worker processes, from
    which MONAI seeds the random transforms there), the random transforms in this process, and torch's,
    NumPy's and Python's global generators (dropout, ...). Each rank so draws its own augmentation, and a
    resumed run sees the same patches, flips and batches as an uninterrupted one.

    Args:
        size: number of training volumes.
        seed: the run's seed.
        generator: the data loader's generator (reseeded every epoch).
        transform: MONAI random transforms run in this process (reseeded every epoch), if any.
        start_epoch: the epoch the first iterator serves (Lightning builds it before its first `set_epoch`).
        with_epoch: yield `(index, epoch)`: the dataset seeds each item from them (the store).
        rank, world_size: this process's place among the DDP processes.
    """

    def __init__(self, size: int, seed: int, generator: torch.Generator, transform: Optional[mt.Compose] = None,
                 start_epoch: int = 0, with_epoch: bool = False, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.generator, self.transform = size, seed, generator, transform
        self.with_epoch = with_epoch
        self.rank, self.world_size = rank, world_size
        self._resume: Optional[tuple[int, int]] = None  # (epoch, indices already trained in it)
        self.set_epoch(start_epoch)

    def resume_inside(self, epoch: int, consumed: int) -> None:
        """Start `epoch`'s iteration (once) after the first `consumed` positions of its permutation, which all ranks
        together had trained: on the same world size exactly the rest of each rank's share; on another, the
        volumes not yet trained, dealt out anew."""
        self._resume = (epoch, consumed) if consumed > 0 else None

    def set_epoch(self, epoch: int) -> None:
        """Reseed every random stream for `epoch` on this rank."""
        self.epoch = epoch
        seed = epoch_seed(self.seed, epoch, self.rank)
        self.generator.manual_seed(seed)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        if self.transform is not None:
            self.transform.set_random_state(seed=seed)

    def epoch_order(self, consumed: int = 0) -> list[int]:
        """This rank's share of the epoch's permutation (the same on every rank) after its first `consumed`
        positions, padded by wrapping to a multiple of the world size."""
        # a private generator: the order must not depend on how many draws the loader made before
        order = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        permutation = torch.randperm(self.size, generator=order).tolist()
        rest = permutation[consumed:]
        padding = -len(rest) % self.world_size
        padded = rest + (permutation * math.ceil(padding / max(1, self.size)))[:padding]
        return padded[self.rank::self.world_size]

    @override
    def __iter__(self) -> Iterator:
        resume = self._resume
        indices = self.epoch_order(resume[1] if resume is not None and resume[0] == self.epoch else 0)
        self._resume = None
        return iter([(index, self.epoch) for index in indices] if self.with_epoch else indices)

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)


class ShardSampler(Sampler):
    """Items rank, rank + W, rank + 2W, ... in order: every item on exactly one rank, none repeated."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        self.size, self.rank, self.world_size = size, rank, world_size

    @override
    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
