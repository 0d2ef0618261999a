"""The run record a `seg fit` child hands to `seg batch` (a JSON file, not a log line)."""

from __future__ import annotations

import pytest

from segmentation.core.handoff import RUN_RECORD_VARIABLE, read_run_record, write_run_record

pytestmark = pytest.mark.unit


def test_the_record_is_written_where_the_parent_asked_and_read_back(tmp_path, monkeypatch):
    path = tmp_path / "batch" / "run.json"
    monkeypatch.setenv(RUN_RECORD_VARIABLE, str(path))
    write_run_record("lightning_logs/demo_unet_none/version_3", "running")
    record = read_run_record(path)
    assert record["run_dir"] == "lightning_logs/demo_unet_none/version_3" and record["status"] == "running"
    assert not list(path.parent.glob(".*tmp-*"))  # written atomically: no temporary left


def test_nothing_is_written_when_nobody_asked_and_garbage_reads_as_no_record(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_RECORD_VARIABLE, raising=False)
    write_run_record("somewhere", "running")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "run.json").write_text('{"run_dir": ')  # as a reader racing a non-atomic writer would see
    assert read_run_record(tmp_path / "run.json") is None and read_run_record(tmp_path / "missing.json") is None
