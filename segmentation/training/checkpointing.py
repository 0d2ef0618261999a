"""Checkpoint files: atomic writes, loading with a clear error, and finding the newest good one.

Lightning's own writer saves to a temporary file in $TMPDIR and moves it: across
filesystems the move is a copy, and a kill during the copy truncates the target.
`AtomicCheckpointIO` writes beside the target, fsyncs, then renames.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from ..core.errors import SegError
from ..core.faults import fault_point

TEMP_MARK = ".tmp-"
# Lightning's logger is the one a user sees (warnings filters must not hide a skipped checkpoint)
log = logging.getLogger("lightning.pytorch")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete half-written checkpoint files that a killed process left in `directory`."""
    stale = [p for p in Path(directory).glob(f".*{TEMP_MARK}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its own directory, fsyncs it, then renames it.

    A kill at any moment leaves either the previous complete file or the new
    complete file, never a truncated one. The first save in a directory removes
    stale temporaries and logs the checkpoint's size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen_dirs: set[Path] = set()

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Atomically write `checkpoint` to `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        first_in_dir = path.parent not in self._seen_dirs
        if first_in_dir:
            remove_stale_temporaries(path.parent)
            self._seen_dirs.add(path.parent)
        temporary = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
        try:
            with open(temporary, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            fault_point("checkpoint-before-rename")
            os.replace(temporary, path)
            _fsync_directory(path.parent)
        finally:
            temporary.unlink(missing_ok=True)
        if first_in_dir:
            rank_zero_info(f"checkpoint size: {path.stat().st_size / 1e6:.1f} MB each ({path.parent})")


_LOADED: dict[tuple, dict] = {}


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint on the CPU (memory-mapped); SegError naming the file when it is unreadable.

    A resume consults the same file several times (stored config, compatibility,
    summary): it is read once per process while its size and modification time stay.
    """
    try:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _LOADED:
            _LOADED[key] = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        return _LOADED[key]
    except FileNotFoundError:
        raise SegError(f"checkpoint {path} does not exist (--ckpt_path)") from None
    except Exception as err:  # a truncated zip, garbage bytes, a pickle error: all mean "not usable"
        good = newest_good_checkpoint(path.parent, exclude=path)
        hint = f"the newest good checkpoint there is {good}" if good else "no other checkpoint there loads"
        raise SegError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {str(err)[:120]}); {hint}. "
            f"Resume with --ckpt_path pointing at a good file, or --ckpt_path last"
        ) from None


def _epoch_of(path: Path) -> int:
    match = re.search(r"epoch=(\d+)", path.name)
    return int(match.group(1)) if match else -1


def checkpoint_candidates(directory: Path) -> list[Path]:
    """The run's epoch and last checkpoints, newest first (last.ckpt before the epoch it copies)."""
    files = [p for p in Path(directory).glob("*.ckpt") if p.name != "best.ckpt" and TEMP_MARK not in p.name]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name == "last.ckpt", _epoch_of(p)), reverse=True)


def newest_good_checkpoint(directory: Path, exclude: Optional[Path] = None) -> Optional[Path]:
    """The newest checkpoint in `directory` that loads; unreadable ones are skipped with a warning."""
    for path in checkpoint_candidates(directory):
        if exclude is not None and path.resolve() == Path(exclude).resolve():
            continue
        try:
            torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        except Exception as err:
            log.warning(f"skipping checkpoint {path}: truncated or corrupt ({type(err).__name__})")
            continue
        return path
    return None
