"""One process at a time trains into a run directory; a lock left by a killed process is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from segmentation.training.run_lock import LOCK_NAME, holder_of

from ..helpers import copy_run, tiny_fit_args


def lock(run, pid: int, host: str = None) -> None:
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "earlier"}))


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_finished_fit_leaves_no_lock(finished_run):
    assert holder_of(finished_run) is None and not (finished_run / LOCK_NAME).exists()


def test_a_run_held_by_a_live_process_is_refused_naming_it(finished_run, demo_root, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    lock(run, os.getppid())  # a live process that is not this one
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"is in use by seg process {os.getppid()}" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    assert holder_of(run)["pid"] == os.getppid()  # the holder's lock is left alone


def test_a_lock_from_another_host_is_refused_saying_which_file_to_delete(finished_run, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    lock(run, 12345, host="elsewhere-node-7")
    result = seg("fit", f"--ckpt_path={run / 'checkpoints/last.ckpt'}", "--trainer.max_epochs=4", cwd=tmp_path)
    assert result.returncode == 2 and "on elsewhere-node-7" in result.stderr and f"delete {run / LOCK_NAME}" in result.stderr


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(finished_run, demo_root, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    dead = a_dead_pid()
    lock(run, dead)
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"took over the lock of seg process {dead}, which is gone" in result.log
    assert (run / "checkpoints/epoch=3.ckpt").is_file() and holder_of(run) is None
