"""The samplers that make every random stream a function of (seed, epoch, rank) and let an epoch resume inside.

Every training item is drawn by `(index, epoch)`, and every random choice made for it is a function of (seed,
epoch, index): the store's patches seed themselves (`data.patches`); a MONAI pipeline is reseeded before each
item (`SeededItems`). So an item is the same whichever worker, process or resumed run draws it, and a run
preempted inside an epoch continues with exactly the patches an uninterrupted run would have drawn.

Training (`EpochSeededSampler`): the order of an epoch is one permutation of all training volumes, drawn
from (seed, epoch) alone, padded by wrapping to a multiple of the world size (DDP ranks must take the same
number of steps), and dealt out rank by rank: rank r takes positions r, r + W, r + 2W, ... A resumed run
starts the epoch it stopped in after the batches it had trained (`resume_inside`). With a fixed number of steps
per epoch (`--data.steps_per_epoch`, nnU-Net's 250 iterations) an epoch is instead `draws` volumes drawn with
replacement from (seed, epoch) alone, each yielded as `(index, epoch, position)`: the position in the epoch's
draws seeds the item too, so a volume drawn twice gives two different patches; dealt out and resumed the same way.

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
from torch.utils.data import Dataset, Sampler
from typing_extensions import override

RANK_STRIDE = 7_777_777  # separates the seeds of ranks (rank 0 keeps the single-process seeds)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of every random stream of one training epoch on one rank."""
    return (seed * 1_000_003 + epoch * 7919 + 12345 + rank * RANK_STRIDE) % 2**31


def item_seed(seed: int, epoch: int, index: int, *draw: int) -> int:
    """The seed of every random choice made for training item `index` in `epoch` (32 bits, for MONAI); `draw`:
    the item's position among the epoch's draws with replacement (`EpochSeededSampler`'s `draws`)."""
    return int(np.random.SeedSequence([seed, epoch, index, *draw]).generate_state(1)[0])


class SeededItems(Dataset):
    """A MONAI dataset whose random transforms are reseeded from (seed, epoch, index) before each item.

    Args:
        dataset: the MONAI dataset (e.g. CacheDataset) that applies `transform` to its items.
        transform: the very Compose instance `dataset` applies (its random transforms are reseeded).
        seed: the run's seed.
    """

    def __init__(self, dataset: Dataset, transform: mt.Compose, seed: int):
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @override
    def __getitem__(self, key: tuple[int, ...]):
        index, epoch, *draw = key
        self.transform.set_random_state(seed=item_seed(self.seed, epoch, index, *draw))
        return self.dataset[index]


class EpochSeededSampler(Sampler):
    """This rank's share of the training volumes, in an order that is a function of (seed, epoch) alone.

    It yields `(index, epoch)` (with `draws`, `(index, epoch, position)`): the dataset seeds each item's random
    choices from them. Lightning calls
    `set_epoch` at the start of every epoch (also the first epoch of a resumed run), which reseeds, from (seed,
    epoch, rank), the data loader's generator and torch's, NumPy's and Python's global generators (dropout, ...).

    Args:
        size: number of training volumes.
        seed: the run's seed.
        generator: the data loader's generator (reseeded every epoch).
        start_epoch: the epoch the first iterator serves (Lightning builds it before its first `set_epoch`).
        rank, world_size: this process's place among the DDP processes.
        draws: volumes drawn with replacement per epoch, all ranks together (`--data.steps_per_epoch`); None: each
            epoch is one permutation of all volumes.
    """

    def __init__(self, size: int, seed: int, generator: torch.Generator, start_epoch: int = 0, rank: int = 0,
                 world_size: int = 1, draws: Optional[int] = None):
        self.size, self.seed, self.generator, self.draws = size, seed, generator, draws
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

    def epoch_sequence(self) -> list[int]:
        """The epoch's volumes, the same on every rank: a permutation of all, or `draws` drawn with replacement."""
        # a private generator: the order must not depend on how many draws the loader made before
        order = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.draws is None:
            return torch.randperm(self.size, generator=order).tolist()
        return torch.randint(self.size, (self.draws,), generator=order).tolist()

    def epoch_keys(self, consumed: int = 0) -> list[tuple[int, ...]]:
        """The keys of this rank's share of the epoch's sequence after its first `consumed` positions, padded by
        wrapping to a multiple of the world size: `(index, epoch)`, or `(index, epoch, position)` with `draws`."""
        sequence = self.epoch_sequence()
        rest = list(range(consumed, len(sequence)))
        padding = -len(rest) % self.world_size
        padded = rest + (list(range(len(sequence))) * math.ceil(padding / max(1, len(sequence))))[:padding]
        positions = padded[self.rank::self.world_size]
        if self.draws is None:
            return [(sequence[p], self.epoch) for p in positions]
        return [(sequence[p], self.epoch, p) for p in positions]

    def epoch_order(self, consumed: int = 0) -> list[int]:
        """The volume indices of `epoch_keys`."""
        return [key[0] for key in self.epoch_keys(consumed)]

    @override
    def __iter__(self) -> Iterator:
        resume = self._resume
        keys = self.epoch_keys(resume[1] if resume is not None and resume[0] == self.epoch else 0)
        self._resume = None
        return iter(keys)

    def __len__(self) -> int:
        return math.ceil((self.size if self.draws is None else self.draws) / self.world_size)


class ShardSampler(Sampler):
    """Items rank, rank + W, rank + 2W, ... in order: every item on exactly one rank, none repeated."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        self.size, self.rank, self.world_size = size, rank, world_size

    @override
    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
