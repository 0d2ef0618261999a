"""One process at a time trains into a run directory: `flock` on `<run>/.seg-lock`, which names its holder.

The holder keeps the lock file open with an exclusive `flock` and its PID, host and start time written in it.
A second `seg fit` into the same run (e.g. `--ckpt_path last` while the first still trains) finds the lock
taken and is refused, naming the holder. The kernel drops the lock when the holder dies in any way (SIGKILL,
OOM killer; over NFS, the lock manager): a file left behind by a dead process is not held and is taken over
with a note. There is no check-then-write window: two fits started in the same instant cannot both win.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from .errors import SegError
from .log import log

LOCK_NAME = ".seg-lock"
_held: dict[Path, int] = {}  # run directory -> descriptor of the lock this process holds


def holder_of(run_dir: Path) -> Optional[dict]:
    """What the lock file of `run_dir` says ({pid, host, since}), if it exists and names a holder."""
    try:
        holder = json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def in_use_message(run_dir: Path, holder: Optional[dict]) -> str:
    """The refusal of a run directory another live process trains into."""
    holder = holder or {}
    return (f"run directory {run_dir} is in use by seg process {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"(since {holder.get('since', '?')}): wait for it or stop it (its lock ends with the process)")


def _lock_descriptor(run_dir: Path) -> Optional[int]:
    """An open descriptor of the run's lock file, locked exclusively by this call; None when another holds it.

    A file that was unlinked (released) between our open and our lock is opened again, so that two processes
    never hold locks on two different files of the same name.
    """
    path = Path(run_dir) / LOCK_NAME
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        try:
            if os.fstat(descriptor).st_ino == os.stat(path).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)


def refuse_if_locked(run_dir: Path) -> Optional[dict]:
    """SegError when another live process holds `run_dir`'s lock; else the left-behind holder (to take over)
    or None. Probes without keeping the lock."""
    run_dir = Path(run_dir)
    if run_dir in _held or not (run_dir / LOCK_NAME).exists():
        return None
    descriptor = _lock_descriptor(run_dir)
    if descriptor is None:
        raise SegError(in_use_message(run_dir, holder_of(run_dir)))
    left_behind = holder_of(run_dir)
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)
    return left_behind


def acquire(run_dir: Path) -> None:
    """Lock `run_dir` for this process (taking over a dead process's file with a note); SegError if a live one
    holds it."""
    run_dir = Path(run_dir)
    if run_dir in _held:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    left_behind = holder_of(run_dir)
    descriptor = _lock_descriptor(run_dir)
    if descriptor is None:
        raise SegError(in_use_message(run_dir, holder_of(run_dir)))
    if left_behind is not None:
        log.info(f"run directory {run_dir}: took over the lock of seg process {left_behind.get('pid')}, "
                       f"which is gone (since {left_behind.get('since')})")
    content = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(descriptor, 0)
    os.write(descriptor, json.dumps(content).encode())
    _held[run_dir] = descriptor


def release(run_dir: Path) -> None:
    """Remove and unlock this process's lock of `run_dir` (a lock of another process is left alone)."""
    descriptor = _held.pop(Path(run_dir), None)
    if descriptor is None:
        return
    (Path(run_dir) / LOCK_NAME).unlink(missing_ok=True)  # before the unlock: a waiter then opens a new file
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)
