"""The training sampler that makes every random stream of an epoch a function of (seed, epoch)."""

from __future__ import annotations

import random
from typing import Iterator, Optional

import numpy as np
import torch
from monai import transforms as mt
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of every random stream of one training epoch."""
    return (seed * 1_000_003 + epoch * 7919 + 12345) % 2**31


class EpochSeededSampler(Sampler):
    """Shuffles the training volumes in an order that is a function of (seed, epoch) alone.

    Lightning calls `set_epoch` at the start of every epoch (also the first
    epoch of a resumed run). That reseeds, from (seed, epoch): the shuffle, the
    data loader's generator (the seeds of its worker processes, from which MONAI
    seeds the random transforms there), the random transforms in this process,
    and torch's, NumPy's and Python's global generators. A resumed run therefore
    sees the same patches, flips and batches as an uninterrupted one.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        generator: torch.Generator,
        transform: Optional[mt.Compose] = None,
        start_epoch: int = 0,
        with_epoch: bool = False,
    ):
        self.size, self.seed, self.generator, self.transform = size, seed, generator, transform
        self.with_epoch = with_epoch  # yield (index, epoch): the dataset seeds each item from them
        # Lightning creates the first iterator (and forks its workers) before its first `set_epoch`,
        # so the sampler must already be at the epoch a resumed run starts with.
        self.set_epoch(start_epoch)

    def set_epoch(self, epoch: int) -> None:
        """Reseed every random stream for `epoch`."""
        self.epoch = epoch
        seed = epoch_seed(self.seed, epoch)
        self.generator.manual_seed(seed)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        if self.transform is not None:
            self.transform.set_random_state(seed=seed)

    def __iter__(self) -> Iterator:
        # a private generator: the order must not depend on how many draws the loader made before
        order = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        indices = torch.randperm(self.size, generator=order).tolist()
        return iter([(index, self.epoch) for index in indices] if self.with_epoch else indices)

    def __len__(self) -> int:
        return self.size
