"""One process at a time trains into a run directory: a lock file that names its holder.

`<run>/.seg-lock` holds the PID, host and start time of the process training into the run. A
second `seg fit` into the same run (e.g. `--ckpt_path last` while the first still trains) is
refused with the holder's PID. A lock left by a process that died (SIGKILL, power cut) is taken
over with a note: on the same host when that PID is no longer alive. A lock from another host
cannot be checked and is refused, saying which file to delete once that process is gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from ..core.errors import SegError

LOCK_NAME = ".seg-lock"


def holder_of(run_dir: Path) -> Optional[dict]:
    """The lock's content ({pid, host, since}) if `run_dir` is locked, else None."""
    try:
        return json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_alive(holder: dict) -> bool:
    """Whether the holder may still run: always for another host (it cannot be checked from here)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def refuse_if_locked(run_dir: Path) -> Optional[dict]:
    """SegError when a live process holds `run_dir`; the stale holder (to be taken over) or None."""
    holder = holder_of(run_dir)
    if holder is None or holder.get("pid") == os.getpid():
        return None
    if is_alive(holder):
        raise SegError(
            f"run directory {run_dir} is in use by seg process {holder.get('pid')} on {holder.get('host')} "
            f"(since {holder.get('since')}): wait for it or stop it; if that process is gone (another host), "
            f"delete {Path(run_dir) / LOCK_NAME}"
        )
    return holder


def acquire(run_dir: Path) -> None:
    """Lock `run_dir` for this process (taking over a stale lock with a note); SegError if a live process holds it."""
    stale = refuse_if_locked(run_dir)
    if stale is not None:
        rank_zero_info(f"run directory {run_dir}: took over the lock of seg process {stale.get('pid')}, "
                       f"which is gone (since {stale.get('since')})")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    content = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    partial = Path(run_dir) / f"{LOCK_NAME}.{os.getpid()}"
    partial.write_text(json.dumps(content))
    os.replace(partial, Path(run_dir) / LOCK_NAME)


def release(run_dir: Path) -> None:
    """Remove this process's lock of `run_dir` (a lock of another process is left alone)."""
    holder = holder_of(run_dir)
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        (Path(run_dir) / LOCK_NAME).unlink(missing_ok=True)


class RunDirectoryLock(Callback):
    """Holds the run directory's lock while a fit trains into it (global rank 0), released at the end or on error."""

    def __init__(self) -> None:
        self.run_dir: Optional[Path] = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Lock the run directory of a fit."""
        log_dir = trainer.log_dir if stage == "fit" else None  # a collective under DDP: every rank must ask
        if log_dir and trainer.is_global_zero:
            self.run_dir = Path(log_dir)
            acquire(self.run_dir)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        """Release the lock."""
        if self.run_dir is not None:
            release(self.run_dir)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Release the lock when the fit fails."""
        self.teardown(trainer, pl_module, "fit")
