"""The run record a `seg fit` child hands to the process that started it (`seg batch`): a small JSON file.

The parent names the file in `SEG_RUN_RECORD`; the fit (global rank 0) writes it atomically as soon as its
run directory is known, and again when the fit ends. The parent reads it whenever it likes: there is no log
line to parse, and a missing or half-written file cannot be seen (`write_atomically`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from .storage import write_text_atomically

RUN_RECORD_VARIABLE = "SEG_RUN_RECORD"


def seg_command() -> list[str]:
    """How to start `seg` as a child process with this same Python."""
    return [sys.executable, "-m", "segmentation"]


def requested_record() -> Optional[Path]:
    """Where this process's parent wants the run record (None: nobody asked for one)."""
    value = os.environ.get(RUN_RECORD_VARIABLE)
    return Path(value) if value else None


def write_run_record(run_dir: str, status: str) -> None:
    """Write `{run_dir, status, pid, updated}` to the requested record file, if one is requested."""
    path = requested_record()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"run_dir": run_dir, "status": status, "pid": os.getpid(), "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_text_atomically(path, json.dumps(record))


def read_run_record(path: Path) -> Optional[dict]:
    """The record at `path`, or None while the child has not written one (or it is not seg's JSON)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("run_dir"), str) else None
