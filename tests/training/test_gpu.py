"""The GPU path of a fit: bf16 autocast on a CUDA device, checkpoints and a finite validation Dice."""

from __future__ import annotations

import math

import pytest
import torch

from segmentation.app.lightning_cli import build_cli

from ..helpers import only_run_dir, tiny_fit_args, values


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
