"""Writability up front and the error for a write the disk refuses (core.storage)."""

from __future__ import annotations

import errno

import pytest

from segmentation.core.storage import StorageError, writable_problem, write_refusal_in


@pytest.mark.unit
def test_a_new_nested_folder_under_a_writable_one_is_writable_and_nothing_is_made(tmp_path):
    assert writable_problem(tmp_path / "a" / "b") == ""
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_and_a_read_only_mount_are_named(tmp_path, mounts):
    (tmp_path / "taken").write_text("x")
    assert writable_problem(tmp_path / "taken" / "sub") == f"{tmp_path / 'taken'} is a file, not a folder"
    frozen = mounts.read_only(tmp_path / "frozen")
    assert writable_problem(frozen / "new") == f"{frozen} is not writable (Read-only file system)"


@pytest.mark.unit
def test_a_full_disk_anywhere_in_the_cause_chain_is_a_storage_error_with_exit_3(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "config.yaml"))
    try:
        try:
            raise full
        except OSError as err:
            raise RuntimeError("a callback failed") from err
    except RuntimeError as wrapped:
        found = write_refusal_in(wrapped)
    assert isinstance(found, StorageError) and found.exit_code == 3
    assert str(found).startswith(f"could not write {tmp_path / 'config.yaml'}: No space left on device (")
    assert "run the same command again (a fit: with --ckpt_path last" in str(found)
    unnamed = write_refusal_in(OSError(errno.ENOSPC, "No space left on device"))  # (no file name: torch's writer)
    assert str(unnamed).startswith("the disk refused a write: No space left on device (") and " in /" in str(unnamed)
    assert write_refusal_in(FileNotFoundError(errno.ENOENT, "missing", "x")) is None  # a read problem is no refusal
