"""`seg batch-task`, the entry point of a SLURM array's task, run as a real process with the environment SLURM gives a
task (no cluster needed): past `--max-requeues` it passes SIGUSR1 on as SIGTERM, so its fit checkpoints and exits
75 without requeueing, and the run's state says so; a task that no run of the state names is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from ..helpers import DEMO_CONFIG, TINY_CONFIG, seg_command

pytestmark = pytest.mark.slow


def write_state(folder, demo_root) -> None:
    fit_args = [f"--config={DEMO_CONFIG}", f"--config={TINY_CONFIG}", f"--data.root={demo_root}",
                "--model.architecture=unet", "--model.scheduler=cosine", "--trainer.max_epochs=500",
                "--data.cache=store"]
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"unet_cosine": {
        "run_dir": None, "status": "pending", "epochs": 500, "architecture": "unet", "scheduler": "cosine",
        "fold": None, "seed": None, "fit_args": fit_args, "slurm_job": "7_0", "preemptions": 2}}))


def test_a_task_past_its_requeue_cap_stops_its_run_without_a_requeue(demo_root, tmp_path):
    folder = tmp_path / "lightning_logs/batches/capped"
    write_state(folder, demo_root)
    # the third start of task 7_0 (two requeues so far) with --max-requeues 2; no SLURM_JOB_ID: no scontrol is run
    environment = {**os.environ, "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "0", "SLURM_RESTART_COUNT": "2"}
    task = subprocess.Popen([*seg_command(), "batch-task", str(folder), "--max-requeues=2"], cwd=tmp_path,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first_epoch = tmp_path / "lightning_logs/demo_unet_cosine/version_0/checkpoints/epoch=0.ckpt"
        deadline = time.monotonic() + 300
        while not first_epoch.exists():
            assert task.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.2)
        task.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@T sends before the time limit
        output, _ = task.communicate(timeout=300)
    finally:
        task.kill()
    assert task.returncode == 75, output[-3000:]
    assert "seg batch-task: unet_cosine (task 7_0, start 3; start)" in output
    assert "seg: preempted by SIGTERM" in output and "requeued" not in output  # passed on as SIGTERM
    saved = json.loads((folder / "state.json").read_text())["unet_cosine"]
    assert saved["preemptions"] == 3 and saved["run_dir"].endswith("demo_unet_cosine/version_0")
    assert saved["status"] == "preempted 3 times: not requeued (--max-requeues 2); the batch command again continues it"


def test_a_task_that_no_run_names_is_refused(demo_root, tmp_path):
    folder = tmp_path / "lightning_logs/batches/capped"
    write_state(folder, demo_root)
    environment = {**os.environ, "SLURM_ARRAY_JOB_ID": "8", "SLURM_ARRAY_TASK_ID": "0"}
    refused = subprocess.run([*seg_command(), "batch-task", str(folder)], cwd=tmp_path, env=environment,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "no run is recorded for SLURM task 8_0" in refused.stderr, refused.stderr
