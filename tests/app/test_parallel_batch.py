"""`seg batch --launcher local --parallel N`: the same runs as the serial batch, bit for bit; a failed run does not
stop the others; a SIGTERM to the batch reaches every running run (each checkpoints its step and exits 75)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from ..helpers import DEMO_CONFIG, TINY_CONFIG, seg_command, values

pytestmark = pytest.mark.slow
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # what --parallel 2 gives each run on 2 cores; the serial batch gets the same
UNET_ONLY = '--model.network_kwargs={"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}'


def batch(demo_root, cwd, *words: str) -> list[str]:
    return [*seg_command(), "batch", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data",
            str(demo_root), "--no-estimate", *words]


def run_batch(demo_root, cwd, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run(batch(demo_root, cwd, *words), cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **ONE_THREAD})


def weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_parallel_runs_equal_the_serial_ones_and_a_failed_run_stops_no_other(demo_root, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    serial.mkdir(), parallel.mkdir()
    alone = run_batch(demo_root, serial, "--archs", "unet", "--schedulers", "cosine", "--epochs", "1")
    assert alone.returncode == 0, alone.stdout[-3000:]
    # segresnet's run fails (the network options fit unet only) while unet's goes on beside it
    together = run_batch(demo_root, parallel, "--archs", "segresnet", "unet", "--schedulers", "cosine",
                         "--epochs", "1", "--launcher", "local", "--parallel", "2", "--", UNET_ONLY)
    assert together.returncode == 1, together.stdout[-3000:]
    assert "2 at once on this machine" in together.stdout and "[unet_cosine] " in together.stdout
    summary = (parallel / "lightning_logs/batches/batch/summary.md").read_text()
    assert summary.count("| failed (exit 2") == 1 and summary.count("| ok |") == 1, summary
    for schedule in ("cosine",):
        run = f"lightning_logs/demo_unet_{schedule}/version_0"
        one, other = weights(serial / run), weights(parallel / run)
        assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one), schedule
        assert values(serial / run, "val/dice") == values(parallel / run, "val/dice")


def test_sigterm_to_a_parallel_batch_checkpoints_every_running_run_and_exits_75(demo_root, tmp_path):
    process = subprocess.Popen(batch(demo_root, tmp_path, "--archs", "unet", "--schedulers", "none", "cosine",
                                     "polynomial", "--epochs", "500", "--launcher", "local", "--parallel", "2", "--",
                                     "--data.cache=store"),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **ONE_THREAD})
    try:
        first_epochs = [tmp_path / f"lightning_logs/demo_unet_{s}/version_0/checkpoints/epoch=0.ckpt"
                        for s in ("none", "cosine")]
        deadline = time.monotonic() + 300
        while not all(path.exists() for path in first_epochs):  # both runs are training
            assert process.poll() is None and time.monotonic() < deadline, "the two runs did not both start"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 75, output[-3000:]
    state = json.loads((tmp_path / "lightning_logs/batches/batch/state.json").read_text())
    assert set(state) == {"unet_none", "unet_cosine"}  # the third never started
    for schedule in ("none", "cosine"):
        assert state[f"unet_{schedule}"]["status"].startswith("preempted") and state[f"unet_{schedule}"][
            "preemptions"] == 1
        run = tmp_path / f"lightning_logs/demo_unet_{schedule}/version_0"
        assert (run / "PREEMPTED").exists() and (run / "checkpoints/last.ckpt").exists()
        assert f"[unet_{schedule}] seg: preempted by SIGTERM" in output
    status = subprocess.run([*seg_command(), "batch", "--status", "batch"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert "| unet_cosine | preempted |" in status.stdout and "| 1 |" in status.stdout, status.stdout
