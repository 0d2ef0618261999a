"""The one content fingerprint: settings keys and source-file stamps."""

from __future__ import annotations

import os

import pytest

from segmentation.core.fingerprint import file_stamp, file_stamps, settings_key

pytestmark = pytest.mark.unit


def test_a_settings_key_ignores_order_and_changes_with_any_value():
    key = settings_key({"spacing": [1.5, 1.5, 2.0], "dataset": "MSDDataModule"})
    assert key == settings_key({"dataset": "MSDDataModule", "spacing": [1.5, 1.5, 2.0]})
    assert key != settings_key({"dataset": "MSDDataModule", "spacing": [1.5, 1.5, 2.5]})
    assert len(key) == 12 and int(key, 16) >= 0


def test_a_stamp_changes_when_a_file_is_rewritten(tmp_path):
    path = tmp_path / "case.nii.gz"
    path.write_bytes(b"one")
    before = file_stamp(path)
    path.write_bytes(b"two")
    os.utime(path, ns=(before[1] + 10**9, before[1] + 10**9))  # (a coarse clock could give the same mtime)
    assert file_stamp(path) != before and file_stamps([path]) == {str(path): file_stamp(path)}
