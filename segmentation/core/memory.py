"""Keeping freed memory for reuse in the processes that cut training patches.

A 4 x 128³ float32 patch is 32 MiB. glibc hands an allocation that large straight from the kernel
(mmap) and gives it back when freed, so every new patch first faults in ~8,000 fresh zeroed pages:
half the time of cutting a BraTS patch from the store (`BENCHMARKS.md`). Raising glibc's mmap and
trim thresholds makes freed patches go back to the heap and the next patch reuse them. The cost: the
process keeps up to `TRIM_THRESHOLD` of freed memory instead of returning it at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 256 * 2**20  # allocations above this (whole volumes, logits) still come from and go back to the kernel
TRIM_THRESHOLD = 512 * 2**20


def reuse_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to `MMAP_THRESHOLD` for reuse; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # macOS, musl without mallopt: patches are cut as before, only slower
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def reuse_freed_memory_in_worker(_worker_id: Any) -> None:
    """`reuse_freed_memory` as a DataLoader `worker_init_fn` (spawned workers do not inherit the setting)."""
    reuse_freed_memory()
