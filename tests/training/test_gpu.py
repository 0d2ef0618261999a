"""The GPU path of a fit: bf16 autocast on a CUDA device, checkpoints and a finite validation Dice; a compiled fit
and its resume; `seg bench` and `seg estimate` reporting CUDA figures. (The bf16 validation of BraTS regions against
float32: tests/model/test_bf16_validation.py.)"""

from __future__ import annotations

import json
import math

import pytest
import torch

from segmentation.app.lightning_cli import build_cli

from ..helpers import DEMO_CONFIG, TINY_CONFIG, only_run_dir, run_seg, tiny_fit_args, values


@pytest.mark.gpu
def test_a_bf16_fit_on_the_gpu_checkpoints_and_validates(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.accelerator=gpu", "--trainer.devices=1",
                                "--trainer.precision=bf16-mixed", "--trainer.max_epochs=2"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run_dir(tmp_path / "lightning_logs")
    written = {p.name for p in (run / "checkpoints").iterdir()}
    assert {"epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt", "best.ckpt"} <= written
    dice = values(run, "val/dice")
    assert len(dice) == 2 and all(math.isfinite(d) and 0.0 <= d <= 1.0 for d in dice)
    assert "Using bfloat16 Automatic Mixed Precision (AMP)" in result.stderr + result.log  # Lightning's wording


@pytest.mark.gpu
def test_the_gpu_cache_trains_on_the_device_with_seg_defaults_and_resumes(demo_root, tmp_path, seg):
    """cache gpu holds the training volumes on CUDA; bf16 comes from seg's CUDA defaults, not the command line."""
    args = tiny_fit_args(demo_root, "--trainer.accelerator=gpu", "--trainer.devices=1", "--data.cache=gpu",
                         "--trainer.max_epochs=1")
    first = seg(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Using bfloat16 Automatic Mixed Precision (AMP)" in first.stderr + first.log  # (seg's CUDA default)
    run = only_run_dir(tmp_path / "lightning_logs")
    result = seg("fit", f"--ckpt_path={run / 'checkpoints/last.ckpt'}", "--trainer.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    dice = values(run, "val/dice")
    assert len(dice) == 2 and all(math.isfinite(d) and 0.0 <= d <= 1.0 for d in dice)


@pytest.mark.gpu
def test_the_gpu_cache_holds_its_volumes_and_builds_its_batches_on_cuda(demo_root):
    fit = tiny_fit_args(demo_root, "--trainer.accelerator=gpu", "--trainer.devices=1", "--data.cache=gpu")
    cli = build_cli(fit[1:])  # (build_cli takes the options without the subcommand)
    datamodule = cli.datamodule
    datamodule.use_device(torch.device("cuda", 0))
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].is_cuda and batch["label"].is_cuda, (batch["image"].device, batch["label"].device)


@pytest.mark.gpu
@pytest.mark.slow
def test_a_compiled_fit_on_the_gpu_validates_and_resumes_compiled_from_last(demo_root, tmp_path):
    """`seg fit --model.compile true` (inductor on CUDA) as real processes: one epoch with validation, then a
    resume from last.ckpt to a second epoch. (No CPU twin: a compiled CPU fit takes ~30 s an epoch under inductor on
    2 cores; `tests/model/test_compile.py` counts the compiled graphs of a CPU fit with a backend of its own.)"""
    first = run_seg(*tiny_fit_args(demo_root, "--trainer.accelerator=gpu", "--trainer.devices=1",
                                   "--model.compile=true", "--trainer.max_epochs=1"), cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    run = only_run_dir(tmp_path / "lightning_logs")
    assert {"epoch=0.ckpt", "last.ckpt", "best.ckpt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    resumed = run_seg("fit", f"--ckpt_path={run / 'checkpoints/last.ckpt'}", "--trainer.max_epochs=2", cwd=tmp_path,
                      timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert only_run_dir(tmp_path / "lightning_logs") == run  # the resume wrote into the same run directory
    written = {p.name for p in (run / "checkpoints").iterdir()}
    assert {"epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt", "best.ckpt"} <= written, written
    resumed_ckpt = torch.load(run / "checkpoints/epoch=1.ckpt", map_location="cpu", weights_only=False)
    assert resumed_ckpt["hyper_parameters"]["compile"] is True  # the resume ran compiled, as its run was configured
    assert not any(key.startswith("net._orig_mod.") for key in resumed_ckpt["state_dict"])  # keys stay plain
    dice = values(run, "val/dice")
    assert len(dice) == 2 and all(math.isfinite(d) and 0.0 <= d <= 1.0 for d in dice), dice


def last_json(stdout: str) -> dict:
    """The last JSON line a `seg ... --json` command printed."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


@pytest.mark.gpu
def test_bench_measures_every_rate_on_cuda_in_bf16_by_seg_defaults(demo_root, tmp_path, seg):
    """Where CUDA is visible `seg bench` (default accelerator) reports CUDA figures: the device, seg's CUDA default
    precision, and each rate measured there."""
    result = seg("bench", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), f"--data.root={demo_root}",
                 "--steps", "2", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = last_json(result.stdout)
    assert figures["device"] == "cuda" and figures["precision"] == "bf16-mixed", figures
    for key in ("ceiling_samples_per_second", "lightning_samples_per_second", "fit_samples_per_second",
                "plain_samples_per_second"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert "cuda" in figures["verdict"], figures["verdict"]


@pytest.mark.gpu
def test_estimate_says_it_measured_on_cuda(demo_root, tmp_path, seg):
    """Where CUDA is visible `seg estimate` measures there (as `seg fit` trains there) and says so."""
    args = ("estimate", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), f"--data.root={demo_root}",
            "--trainer.max_epochs=3")
    result = seg(*args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = last_json(result.stdout)
    assert figures["device"] == "cuda:0" and figures["configured_devices"] == "1", figures
    assert figures["seconds_per_step"] > 0 and figures["seconds_per_validation_case"] > 0
    assert math.isfinite(figures["projected_seconds"]) and figures["projected_seconds"] > 0
    text = seg(*args, cwd=tmp_path)
    assert text.returncode == 0 and text.stdout.strip().splitlines()[-1] == "measured on one device (cuda:0)"
