"""The advisory lock that lets one of several processes started together do shared work while the others wait."""

from __future__ import annotations

import threading

import pytest

from segmentation.core.errors import SegError
from segmentation.core.locking import exclusive

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_a_second_holder_waits_until_the_first_releases(tmp_path):
    lock, order = tmp_path / "work.lock", []
    first_inside, second_done = threading.Event(), threading.Event()

    def second() -> None:
        first_inside.wait()
        with exclusive(lock):  # a separate open file description: flock makes it wait, also within one process
            order.append("second")
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with exclusive(lock) as held:
        assert held
        first_inside.set()
        assert not second_done.wait(timeout=0.5)  # blocked while the first holds the lock
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"] and second_done.is_set()


def test_an_unwritable_place_runs_the_block_unlocked(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with exclusive(blocker / "sub" / "work.lock") as held:  # its folder cannot be created
        assert held is False


def test_a_lock_held_too_long_is_an_error_naming_the_file_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_LOCK_TIMEOUT", "0.2")
    lock_file = tmp_path / "check.lock"
    with exclusive(lock_file, "dataset check"):
        with pytest.raises(SegError, match=r"waited 0 s for .*check.lock \(dataset check of another process\).*"
                                           r"SEG_LOCK_TIMEOUT"):
            with exclusive(lock_file, "dataset check"):
                pass
