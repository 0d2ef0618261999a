"""SLURM requeue into the same run, on a real one-node SLURM cluster started on this machine
(`tests/slurm/start_node.sh`: Debian's slurm-wlm and munge; skipped, with the script's reason, where it
cannot run). A tiny `seg fit` batch job gets SIGUSR1 from `scancel` once its first epoch is saved: seg
checkpoints, requeues the job and exits 75; the requeued job runs the same script and finishes the same run."""

from __future__ import annotations

import subprocess

import pytest

from ..helpers import only_run_dir, seg_command, tiny_fit_args, values
from ..slurm.node import job_state, node_state, wait_for

pytestmark = pytest.mark.slow
EPOCHS = 40  # far more than the epochs between the first checkpoint and the signal


def test_sigusr1_requeues_the_job_and_the_requeued_job_finishes_the_same_run(slurm, demo_root, tmp_path):
    command = " ".join([*seg_command(), *tiny_fit_args(demo_root, f"--trainer.max_epochs={EPOCHS}",
                                                       "--data.cache=store")])
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --requeue\n#SBATCH --open-mode=append\n#SBATCH --ntasks=1\n"
                      f"#SBATCH --output={tmp_path}/job.out\ncd {tmp_path}\n"
                      f"echo \"job start, restart count ${{SLURM_RESTART_COUNT:-0}}\"\nexec {command}\n")
    job = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.strip().split(";")[0]
    log = tmp_path / "job.out"
    wait_for(lambda: list(tmp_path.glob("lightning_logs/*/version_0/checkpoints/epoch=0.ckpt")), "the first epoch")
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
    wait_for(lambda: log.exists() and f"SLURM job {job} requeued" in log.read_text(), "the requeue")

    def started_again() -> bool:
        """Nudge the requeued job's start (else ~2 min) once it is pending and the node has let go of the first run:
        started at once, slurmd refuses it ("Job credential revoked") and the job ends instead of running."""
        if job_state(job) == "PENDING" and node_state() == "idle":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        return "job start, restart count 1" in log.read_text()

    wait_for(started_again, "the requeued job to start")
    wait_for(lambda: job_state(job) == "", "the requeued job to finish")
    out = log.read_text()
    assert "seg: preempted by SIGUSR1 " in out and "job start, restart count 1" in out
    assert "continuing the preempted run" in out and f"epochs: {EPOCHS} (max_epochs {EPOCHS})" in out
    run = only_run_dir(tmp_path / "lightning_logs")  # the same run directory, no second version
    assert not (run / "PREEMPTED").exists() and len(values(run, "val/dice")) == EPOCHS
    assert not list(tmp_path.rglob("hpc_ckpt_*.ckpt"))  # Lightning's own auto-requeue stayed off
