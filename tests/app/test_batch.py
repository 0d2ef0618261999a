"""Batches and time estimates: `make batch-smoke` end to end, `seg estimate`, a failed run not stopping the rest."""

from __future__ import annotations

import json
import subprocess

from .conftest import DEMO_CONFIG, REPO, TINY_CONFIG, run_seg


def test_batch_smoke_runs_all_three_batches(tmp_path):
    result = subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "-o", ".installed", "batch-smoke"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for dataset in ("brats", "msd_liver", "totalseg"):
        for architecture in ("unet", "segresnet"):
            run = tmp_path / f"lightning_logs/{dataset}_{architecture}_reduce_on_plateau/version_0"
            assert (run / "checkpoints/epoch=1.ckpt").is_file(), run
    for batch in ("smoke1", "smoke2", "smoke3"):
        summary = (tmp_path / f"lightning_logs/batches/{batch}/summary.md").read_text()
        assert summary.count("| ok |") == 2, summary
    assert result.stdout.count("estimate ") >= 6 and "total (measured on this machine)" in result.stdout


def test_estimate_projects_the_measured_epoch_time(demo_root, tmp_path):
    result = run_seg("estimate", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG),
                     f"--data.root={demo_root}", "--trainer.max_epochs=30", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert figures["seconds_per_step"] > 0 and figures["steps_per_epoch"] == 2 and figures["validation_cases"] == 2
    assert figures["seconds_per_epoch"] > 0
    expected = figures["seconds_per_epoch"] * 30 + figures["preparation_seconds"]
    assert abs(figures["projected_seconds"] - expected) < 1e-6


def test_a_failed_run_does_not_stop_the_batch(demo_root, tmp_path):
    result = run_seg("batch", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data", str(demo_root),
                     "--archs", "vnet9", "unet", "--epochs", "1", "--no-estimate", "--name", "mixed", cwd=tmp_path)
    assert result.returncode == 1
    summary = (tmp_path / "lightning_logs/batches/mixed/summary.md").read_text()
    assert "| vnet9_reduce_on_plateau | failed (exit 2" in summary
    assert "| unet_reduce_on_plateau | ok |" in summary
    assert (tmp_path / "lightning_logs/batches/mixed/vnet9_reduce_on_plateau.log").read_text().strip()
