"""Python objects of every DDP rank, on every rank: what per-rank shards of test and predict add up to."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist


def gather_objects(trainer: Any, mine: Any) -> list[Any]:
    """`mine` of every rank, in rank order, on every rank (`[mine]` for a single process). A collective under
    DDP: every rank must call it."""
    if int(getattr(trainer, "world_size", 1)) == 1 or not dist.is_available() or not dist.is_initialized():
        return [mine]
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone
