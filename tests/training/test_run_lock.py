"""One process at a time trains into a run directory (flock); a lock file left by a killed process is taken over."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

from segmentation.core.directory_lock import LOCK_NAME, acquire, holder_of, release

from ..helpers import copy_run, tiny_fit_args


def lock(run, pid: int, host: str = None) -> None:
    """A lock file naming `pid` on `host`, as a process that died would leave it (nobody holds the flock)."""
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "since": "earlier"}))


@contextmanager
def held(run, pid: int, host: str = None):
    """The run's lock held (flock on its own open file, as another process would hold it) and naming `pid`."""
    lock(run, pid, host)
    descriptor = os.open(run / LOCK_NAME, os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(descriptor)


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_finished_fit_leaves_no_lock(finished_run):
    assert holder_of(finished_run) is None and not (finished_run / LOCK_NAME).exists()


def test_a_run_held_by_a_live_process_is_refused_naming_it(finished_run, demo_root, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with held(run, os.getppid()):  # a live process that is not this one
        result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"is in use by seg process {os.getppid()}" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    assert holder_of(run)["pid"] == os.getppid()  # the holder's lock is left alone


def test_a_lock_held_from_another_host_is_refused_naming_the_host(finished_run, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    with held(run, 12345, host="elsewhere-node-7"):
        result = seg("fit", f"--ckpt_path={run / 'checkpoints/last.ckpt'}", "--trainer.max_epochs=4", cwd=tmp_path)
    assert result.returncode == 2 and "seg process 12345 on elsewhere-node-7" in result.stderr


def test_processes_racing_for_one_run_directory_cannot_both_win(tmp_path):
    """Six processes try to lock the same run directory at once: exactly one holds it."""
    script = ("import sys; from segmentation.core.directory_lock import acquire\n"
              "try:\n    acquire(sys.argv[1])\nexcept Exception:\n    print('refused', flush=True); sys.exit(0)\n"
              "print('won', flush=True); sys.stdin.read()")  # holds the lock until the test closes its stdin
    racers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = sorted(racer.stdout.readline().strip() for racer in racers)
    for racer in racers:
        racer.communicate(timeout=60)
    assert outcomes == ["refused"] * 5 + ["won"]


def test_the_lock_is_released_by_the_kernel_when_its_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from segmentation.core.directory_lock import "
                               "acquire; acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    assert holder_of(tmp_path)["pid"] == holder.pid  # the file stays, naming the dead holder
    acquire(tmp_path)  # not refused: the kernel released the flock
    assert holder_of(tmp_path)["pid"] == os.getpid()
    release(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_note(finished_run, demo_root, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    dead = a_dead_pid()
    lock(run, dead)
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"took over the lock of seg process {dead}, which is gone" in result.log
    assert (run / "checkpoints/epoch=3.ckpt").is_file() and holder_of(run) is None
