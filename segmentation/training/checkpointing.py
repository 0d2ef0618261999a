"""Checkpoint files: atomic writes, loading with a clear error, and finding the newest good one.

Lightning's own writer saves to a temporary file in $TMPDIR and moves it: across
filesystems the move is a copy, and a kill during the copy truncates the target.
`AtomicCheckpointIO` writes beside the target, fsyncs, then renames.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from ..core.errors import SegError
from ..core.log import log
from ..core.storage import (
    TEMP_MARK,
    StorageError,
    free_space,
    is_write_refusal,
    remove_stale_temporaries,
    write_atomically,
)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its own directory, fsyncs it, then renames it.

    A kill at any moment leaves either the previous complete file or the new
    complete file, never a truncated one. The first save in a directory removes
    stale temporaries and logs the checkpoint's size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen_dirs: set[Path] = set()

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Atomically write `checkpoint` to `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        first_in_dir = path.parent not in self._seen_dirs
        if first_in_dir:
            remove_stale_temporaries(path.parent)
            self._seen_dirs.add(path.parent)
        write_checkpoint_file(path, lambda partial: save_to_file(checkpoint, partial))
        if first_in_dir:
            log.info(f"checkpoint size: {path.stat().st_size / 1e6:.1f} MB each ({path.parent})")

    @override
    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Optional[bool] = None) -> dict:
        """Lightning's load of a checkpoint to resume, validate, test or predict from: the safe unpickler too."""
        try:
            return read_checkpoint(path, map_location=map_location or "cpu")
        except UnsafeCheckpoint as err:
            raise SegError(unsafe_message(path, str(err))) from None


def write_checkpoint_file(path: Path, write: Callable[[Path], object]) -> None:
    """`write_atomically` at the fault point `checkpoint-before-rename`; a write the disk refuses (full, read-only)
    is the StorageError of `checkpoint_not_written`."""
    try:
        write_atomically(path, write, fault="checkpoint-before-rename")
    except Exception as err:
        if not (is_write_refusal(err) or isinstance(err, PermissionError)):
            raise
        raise checkpoint_not_written(path, err) from None


def save_to_file(checkpoint: dict[str, Any], path: Path) -> None:
    """`torch.save` into a file seg opens (so that a refused open is an OSError with its errno, not torch's
    RuntimeError)."""
    with open(path, "wb") as handle:
        torch.save(checkpoint, handle)


def checkpoint_not_written(path: Path, err: Exception) -> StorageError:
    """The one-line error of a checkpoint the disk refused (full, read-only): what is intact, how to go on."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else "the write failed"
    good = newest_good_checkpoint(path.parent)
    kept = f"the newest good checkpoint is {good.name}" if good else "no earlier checkpoint exists"
    return StorageError(
        f"could not write checkpoint {path} ({reason}; {free_space(path.parent)}); nothing was overwritten and "
        f"{kept}. Free space or make {path.parent} writable, then continue with seg fit --ckpt_path last"
    )


TRUST_VARIABLE = "SEG_TRUST_CHECKPOINTS"  # =1: load checkpoints with the full unpickler (only for files you trust)
_LOADED: dict[tuple, dict] = {}


class UnsafeCheckpoint(Exception):
    """A checkpoint that holds objects torch's safe unpickler refuses (loading them could run code)."""


def trusted() -> bool:
    """Whether the user opted in to the full (code-running) unpickler with `SEG_TRUST_CHECKPOINTS=1`."""
    return os.environ.get(TRUST_VARIABLE) == "1"


def read_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict:
    """`torch.load` with the safe unpickler (tensors, containers, numbers, strings only), unless trusted.

    UnsafeCheckpoint names the refused type; nothing of the file has been turned into objects then.
    """
    try:
        return torch.load(path, map_location=map_location, mmap=True, weights_only=not trusted())
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if "weights_only" not in str(err) and found is None:
            raise
        offending = found.group(1) if found else "an object the safe loader does not accept"
        raise UnsafeCheckpoint(offending) from None


def unsafe_message(path: Path | str, offending: str) -> str:
    """The refusal of a checkpoint that needs the code-running unpickler."""
    return (f"checkpoint {path} holds {offending}, which only the full unpickler can load, and unpickling can run "
            f"code: seg loads checkpoints safely and refuses it. If you trust where the file comes from, run again "
            f"with {TRUST_VARIABLE}=1")


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely on the CPU (memory-mapped); SegError naming the file when it is unreadable or unsafe.

    A resume consults the same file several times (stored config, compatibility,
    summary): it is read once per process while its size and modification time stay.
    """
    try:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, trusted())
        if key not in _LOADED:
            _LOADED[key] = read_checkpoint(path)
        return _LOADED[key]
    except FileNotFoundError:
        raise SegError(f"checkpoint {path} does not exist (--ckpt_path)") from None
    except UnsafeCheckpoint as err:
        raise SegError(unsafe_message(path, str(err))) from None
    except Exception as err:  # a truncated zip, garbage bytes, a pickle error: all mean "not usable"
        good = newest_good_checkpoint(path.parent, exclude=path)
        hint = f"the newest good checkpoint there is {good}" if good else "no other checkpoint there loads"
        raise SegError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {first_words(str(err))}); {hint}. "
            f"Resume with --ckpt_path pointing at a good file, or --ckpt_path last"
        ) from None


def first_words(text: str, limit: int = 120) -> str:
    """`text`'s first line, cut at a word boundary near `limit` characters (with an ellipsis when cut)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."


def versions_newest_first(run: Path) -> list[Path]:
    """The `version_N` directories of a run name's folder, the highest N (the most recently made) first.

    By number, not by modification time: a copy or an `rsync` without `-t` gives every folder a new time.
    """
    return sorted(Path(run).glob("version_*"), key=lambda p: (_version_number(p), p.name), reverse=True)


def _version_number(path: Path) -> int:
    suffix = path.name.removeprefix("version_")
    return int(suffix) if suffix.isdigit() else -1


def checkpoint_candidates(directory: Path) -> list[Path]:
    """The run's last and epoch checkpoints (not best.ckpt, no temporaries): last.ckpt first, then the epoch files
    from the highest epoch in their names down, then any other name."""
    files = [p for p in Path(directory).glob("*.ckpt") if p.name != "best.ckpt" and TEMP_MARK not in p.name]
    return sorted(files, key=lambda p: (p.name != "last.ckpt", -_epoch_in_name(p), p.name))


def _epoch_in_name(path: Path) -> int:
    match = re.fullmatch(r"epoch=(\d+)\.ckpt", path.name)
    return int(match.group(1)) if match else -1


def training_position(checkpoint: dict, path: Path) -> tuple[int, int, bool]:
    """How far into training a loaded checkpoint is: (global step, epoch, is last.ckpt), read from inside it."""
    return int(checkpoint.get("global_step", -1)), int(checkpoint.get("epoch", -1)), path.name == "last.ckpt"


def readable_position(path: Path) -> Optional[tuple[int, int, bool]]:
    """`training_position` of a checkpoint that loads and holds training state; None, with a warning, otherwise."""
    try:
        checkpoint = read_checkpoint(path)
    except UnsafeCheckpoint as err:
        log.warning(f"skipping checkpoint {path}: {unsafe_message(path, str(err))}")
        return None
    except Exception as err:
        log.warning(f"skipping checkpoint {path}: truncated or corrupt ({type(err).__name__})")
        return None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        log.warning(f"skipping checkpoint {path}: not a Lightning checkpoint (no state_dict)")
        return None
    return training_position(checkpoint, path)


def newest_good_checkpoint(directory: Path, exclude: Optional[Path] = None) -> Optional[Path]:
    """The checkpoint in `directory` that loads and is furthest into training by the global step and epoch it
    records (last.ckpt on a tie: it is the newest copy of its epoch), not by file time, which a copy reorders.

    Only last.ckpt and the newest epoch file that loads are read (an older epoch file records less training);
    unreadable ones are skipped with a warning.
    """
    newest, furthest = None, None
    for path in checkpoint_candidates(directory):
        if exclude is not None and path.resolve() == Path(exclude).resolve():
            continue
        position = readable_position(path)
        if position is not None and (furthest is None or position > furthest):
            newest, furthest = path, position
        if position is not None and path.name != "last.ckpt":
            break
    return newest
