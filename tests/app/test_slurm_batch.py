"""`seg batch --launcher slurm` on the real one-node SLURM cluster (tests/slurm): a 4-run batch as one job array,
2 tasks at once; one task signalled mid-run requeues and ends with the weights of an uninterrupted run; `--status`
counts the preemption; the same command again submits nothing; more `--epochs` submits continuations only."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import torch

from ..helpers import DEMO_CONFIG, TINY_CONFIG, seg_command, values
from ..slurm.node import job_state, wait_for

pytestmark = pytest.mark.slow
EPOCHS = 12  # more than the epochs between the first checkpoint and the signal's arrival
SCHEDULES = ("none", "cosine", "polynomial", "reduce_on_plateau")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # each task's (sbatch passes the environment on), and the uninterrupted run's


def batch(demo_root, cwd, epochs: int, *words: str) -> subprocess.CompletedProcess:
    command = [*seg_command(), "batch", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data",
               str(demo_root), "--no-estimate", "--archs", "unet", "--epochs", str(epochs), "--name", "array", *words,
               "--", "--data.cache=store"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ONE_THREAD})


def weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_a_batch_runs_as_one_slurm_array_requeues_a_preempted_task_and_resubmits_only_what_is_unfinished(
        slurm, demo_root, tmp_path):
    def submit(epochs: int) -> subprocess.CompletedProcess:
        return batch(demo_root, tmp_path, epochs, "--schedulers", *SCHEDULES, "--launcher", "slurm",
                     "--max-parallel", "2", "--gres", "none")

    state_file = tmp_path / "lightning_logs/batches/array/state.json"

    def state() -> dict:
        return json.loads(state_file.read_text())

    def all_finished(epochs: int) -> bool:
        return all(run["status"] == "ok" and run["epochs"] == epochs for run in state().values())

    arrays = []
    try:
        first = submit(EPOCHS)
        assert first.returncode == 0, first.stdout + first.stderr
        arrays.append(re.search(r"SLURM array (\d+) submitted, 4 tasks", first.stdout).group(1))
        cosine = f"{arrays[0]}_1"
        assert state()["unet_cosine"]["slurm_job"] == cosine and "%2" in (state_file.parent / "array.sbatch"
                                                                           ).read_text()
        run = tmp_path / "lightning_logs/demo_unet_cosine/version_0"
        wait_for(lambda: (run / "checkpoints/epoch=0.ckpt").exists(), "the cosine run's first epoch")
        # (scancel goes on signalling a task that requeues itself, "try again later", for ~90 s: it would reach the
        # requeued task too; stopped once the signal has done its work)
        signaller = subprocess.Popen(["scancel", "--batch", "--signal=USR1", cosine], stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: state()["unet_cosine"].get("preemptions") == 1, "the preemption")
        finally:
            signaller.kill()

        def started_again() -> bool:
            """Nudge the requeued task's start (SLURM holds a requeued job back ~2 min) once it is pending."""
            if job_state(cosine) == "PENDING":
                subprocess.run(["scontrol", "update", f"JobId={cosine}", "StartTime=now"], capture_output=True)
            return "start 2; continue" in (state_file.parent / f"slurm/{cosine}.out").read_text()

        wait_for(started_again, "the requeued task to start")
        wait_for(lambda: all_finished(EPOCHS), "every run to finish", seconds=600)

        status = subprocess.run([*seg_command(), "batch", "--status", "array"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120).stdout
        assert f"| unet_cosine | finished | {EPOCHS} of {EPOCHS} | — | 1 |" in status, status
        assert status.count(" | finished | ") == 4 and "every run has ended" in status
        task_log = (state_file.parent / f"slurm/{cosine}.out").read_text()
        assert "seg: preempted by SIGUSR1" in task_log and f"seg: SLURM job {cosine} requeued" in task_log
        assert f"(task {cosine}, start 2; continue)" in task_log

        alone = tmp_path / "alone"  # the cosine run again, never interrupted (the serial launcher)
        alone.mkdir()
        uninterrupted = batch(demo_root, alone, EPOCHS, "--schedulers", "cosine")
        assert uninterrupted.returncode == 0, uninterrupted.stdout[-3000:]
        one, other = weights(run), weights(alone / "lightning_logs/demo_unet_cosine/version_0")
        assert all(torch.equal(one[k], other[k]) for k in one)

        again = submit(EPOCHS)
        assert "nothing to submit" in again.stdout and state()["unet_cosine"]["slurm_job"] == cosine, again.stdout

        more = submit(EPOCHS + 1)
        arrays.append(re.search(r"SLURM array (\d+) submitted, 4 tasks", more.stdout).group(1))
        assert more.stdout.count(f"to {EPOCHS + 1} epochs") == 4, more.stdout  # every run continues
        wait_for(lambda: all_finished(EPOCHS + 1), "every continuation to finish", seconds=600)
        for schedule in SCHEDULES:
            versions = list((tmp_path / f"lightning_logs/demo_unet_{schedule}").glob("version_*"))
            assert [v.name for v in versions] == ["version_0"]
            assert len(values(versions[0], "val/dice")) == EPOCHS + 1
    finally:
        for array in arrays:
            if job_state(array):
                subprocess.run(["scancel", array], capture_output=True, timeout=60)
