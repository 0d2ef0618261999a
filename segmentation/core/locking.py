"""One process at a time: a file lock (`filelock`) for work that several processes may start at once.

Under SLURM (`srun`) or torchrun every rank runs `seg fit` from the start, before any process group exists:
the dataset check, the TotalSegmentator merge and the store would be done by every rank at once. Inside
`exclusive(lock file, what)` the first process does the work and writes its results; the others wait for the
lock — saying so after a minute, giving up with an error after `SEG_LOCK_TIMEOUT` seconds (default a day) —
then find the results written (the work itself skips what is fresh).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .errors import SegError
from .log import log

TIMEOUT_VARIABLE = "SEG_LOCK_TIMEOUT"
PATIENT_SECONDS = 60.0  # waited without a word


def lock_timeout() -> float:
    """How long a process waits for another's shared work (`SEG_LOCK_TIMEOUT` seconds, default 24 h)."""
    try:
        return float(os.environ.get(TIMEOUT_VARIABLE) or 24 * 3600)
    except ValueError:
        raise SegError(f"{TIMEOUT_VARIABLE}={os.environ[TIMEOUT_VARIABLE]!r} is not a number of seconds") from None


@contextmanager
def exclusive(lock_file: Path, what: str = "shared work") -> Iterator[bool]:
    """Hold an exclusive lock on `lock_file` (created if needed) for the block; yields False, without locking, where
    the file cannot be created (a read-only folder: nothing will be written there anyway)."""
    try:
        Path(lock_file).parent.mkdir(parents=True, exist_ok=True)
        Path(lock_file).touch(exist_ok=True)
    except OSError:
        yield False
        return
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=min(PATIENT_SECONDS, lock_timeout()))
    except Timeout:
        log.info(f"waiting for another process's {what} ({lock_file})")
        try:
            lock.acquire(timeout=max(0.0, lock_timeout() - PATIENT_SECONDS))
        except Timeout:
            raise SegError(f"waited {lock_timeout():.0f} s for {lock_file} ({what} of another process): is a seg "
                           f"process stuck? Stop it, or raise {TIMEOUT_VARIABLE}") from None
    try:
        yield True
    finally:
        lock.release()
