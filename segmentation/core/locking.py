"""One process at a time: an advisory file lock for work that several processes may start at once.

Under SLURM (`srun`) or torchrun every rank runs `seg fit` from the start, before any process group exists:
the dataset check, the TotalSegmentator merge and the store would be done by every rank at once. Inside
`exclusive(lock file)` the first process does the work and writes its results; the others wait for the lock,
then find the results written (the work itself skips what is fresh).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def exclusive(lock_file: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `lock_file` (created if needed) for the block; yields False, without locking, where
    the file cannot be created (a read-only folder: nothing will be written there anyway)."""
    try:
        Path(lock_file).parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield True
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
