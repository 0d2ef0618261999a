"""Whether seg can write where it is about to, and the error for when the disk refuses mid-run.

A read-only or unwritable folder is found before anything is trained (`writable_problem`);
a disk that fills up during the run is a `StorageError`: exit status 3, every file
written before it intact.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .errors import SegError
from .faults import fault_point

WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}  # only a write raises these


class StorageError(SegError):
    """The machine refused a write seg needed (disk full, quota, read-only): exit status 3, not a user error."""

    exit_code = 3


def nearest_existing(folder: Path) -> Path:
    """`folder` itself, or its nearest ancestor that exists (where creating it would start)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def writable_problem(folder: Path | str) -> str:
    """Why seg could not create and write files in `folder` ("" if it can); nothing is left behind.

    Tried for real (a temporary file), because permission bits say nothing to root or to a read-only mount.
    """
    existing = nearest_existing(Path(folder))
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"{existing} is not writable ({err.strerror})"
    return ""


def free_space(folder: Path) -> str:
    """The free space of `folder`'s file system, for messages ("unknown" if it cannot be read)."""
    try:
        return f"{shutil.disk_usage(nearest_existing(folder)).free / 2**20:,.1f} MiB free"
    except OSError:
        return "free space unknown"


def is_write_refusal(err: BaseException) -> bool:
    """Whether `err` is the file system refusing a write (disk full, quota, read-only file system)."""
    if isinstance(err, OSError):
        return err.errno in WRITE_ERRNOS
    # torch's zip writer reports a failed write as a RuntimeError from inline_container.cc, without errno
    return isinstance(err, RuntimeError) and ("PytorchStreamWriter" in str(err) or "file write failed" in str(err))


def write_refusal_in(exc: BaseException | None) -> StorageError | None:
    """A StorageError for the write refusal in `exc`'s chain of causes, if there is one."""
    while exc is not None:
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, OSError) and is_write_refusal(exc):
            path = Path(exc.filename) if exc.filename else None
            what = f"could not write {path}" if path else "the disk refused a write"
            where = path.parent if path else Path.cwd()
            return StorageError(
                f"{what}: {exc.strerror} ({free_space(where)} in {where}). Files written before are intact; free "
                f"space or make the folder writable, then run the same command again (a fit: with --ckpt_path "
                f"last, to continue it)"
            )
        exc = exc.__cause__ or exc.__context__
    return None


TEMP_MARK = ".tmp-"  # `.<name>.tmp-<pid>`: a file being written beside its final name


def temporary_beside(path: Path) -> Path:
    """The temporary file `path` is written to before its rename (hidden, named by this process)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries that killed processes left in `directory` (the files they replaced are intact)."""
    stale = [p for p in Path(directory).glob(f".*{TEMP_MARK}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def fsync_path(path: Path) -> None:
    """Force `path` (a file or a folder: its entries) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, write: Callable[[Path], object], fault: str | None = None) -> None:
    """Write `path` durably and atomically: `write(temporary file beside it)`, fsync, rename, fsync the folder.

    A reader, a kill or a power cut sees the old file or the new one, never half of one; the temporary is
    removed when `write` fails. `fault` names the `core.faults` point between the fsync and the rename.
    """
    path = Path(path)
    partial = temporary_beside(path)
    try:
        write(partial)
        fsync_path(partial)
        if fault:
            fault_point(fault)
        os.replace(partial, path)
        fsync_path(path.parent)
    except OSError as err:
        if err.filename is None and is_write_refusal(err):  # (met inside `write`, it often names no file)
            err.filename = str(path)
        raise
    finally:
        if os.path.lexists(partial):  # (unlinking a missing file on a read-only mount raises EROFS)
            partial.unlink()


def write_text_atomically(path: Path, text: str) -> None:
    """`write_atomically` of a text file (UTF-8)."""
    write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def write_csv_atomically(path: Path, rows: list[dict]) -> Path:
    """`rows` as a CSV file at `path` (columns: the first row's keys), written atomically; its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(partial: Path) -> None:
        with open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)
    return path
