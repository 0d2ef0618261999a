"""The GPU path of a fit: bf16 autocast on a CUDA device, checkpoints and a finite validation Dice."""

from __future__ import annotations

import math

import pytest
import torch

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
    weights = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())  # autocast, not bf16 weights
