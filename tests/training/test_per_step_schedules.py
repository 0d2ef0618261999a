"""Per-step schedules in real runs: `lr` logged at every optimizer step equals torch's
`SequentialLR(LinearLR, CosineAnnealingLR)`, and a run stopped by SIGTERM mid-epoch and inside its warm-up
resumes to the uninterrupted run's weights and LRs, bitwise."""

from __future__ import annotations

import os

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, PolynomialLR, SequentialLR

from segmentation.core.faults import SIGNAL_VARIABLE
from segmentation.training.preemption import PREEMPTED_EXIT

from ..helpers import (
    DETERMINISTIC,
    fit_tiny,
    only_run_dir,
    resume_in_process,
    scalars,
    seg_in_process,
    stepped_lrs,
    tiny_fit_args,
    weights,
)

EPOCHS, STEPS_PER_EPOCH, WARMUP, LR = 4, 2, 4, 3e-3  # tiny.yaml: 4 training cases, 2 per batch; demo.yaml's lr
PER_STEP = ["--model.scheduler=cosine", "--model.schedule.interval=step", f"--model.schedule.warmup_steps={WARMUP}",
            "--data.cache=store", f"--trainer.max_epochs={EPOCHS}"]


def torch_lrs(steps: int) -> list[float]:
    """torch's own warm-up + cosine over the run's optimizer steps."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    rest = steps - WARMUP
    scheduler = SequentialLR(opt, [LinearLR(opt, 0.01, 1.0, WARMUP), CosineAnnealingLR(opt, rest, eta_min=LR * 0.01)],
                             milestones=[WARMUP])
    return stepped_lrs(scheduler, opt, steps)


@pytest.fixture(scope="module")
def uninterrupted(demo_root, tmp_path_factory):
    return fit_tiny(demo_root, tmp_path_factory.mktemp("per_step"), *PER_STEP)


def test_the_lr_of_every_step_is_torchs_warm_up_and_cosine(uninterrupted):
    logged = scalars(uninterrupted, "lr")
    assert [step for step, _ in logged] == list(range(EPOCHS * STEPS_PER_EPOCH))  # one per optimizer step
    assert [value for _, value in logged] == pytest.approx(torch_lrs(EPOCHS * STEPS_PER_EPOCH), rel=1e-6)


def test_sigterm_mid_epoch_in_the_warm_up_resumes_bitwise(demo_root, tmp_path, uninterrupted, capsys):
    step = STEPS_PER_EPOCH + 1  # the first batch of epoch 1, inside the 4-step warm-up
    os.environ[SIGNAL_VARIABLE] = f"SIGTERM:{step}"
    try:
        code = seg_in_process(tiny_fit_args(demo_root, f"--trainer.default_root_dir={tmp_path}", *DETERMINISTIC,
                                            *PER_STEP))
    finally:
        del os.environ[SIGNAL_VARIABLE]
    assert code == PREEMPTED_EXIT
    run = only_run_dir(tmp_path / "lightning_logs")
    last = run / "checkpoints/last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == step and saved["lr_schedulers"][0]["last_epoch"] == step < WARMUP
    resume_in_process(last, capsys=capsys)
    a, b = weights(uninterrupted / "checkpoints/last.ckpt"), weights(last)
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ from the uninterrupted run"
    assert [v for _, v in scalars(run, "lr")] == [v for _, v in scalars(uninterrupted, "lr")]


def test_a_warm_up_per_epoch_logs_torchs_warm_up_and_polynomial_lr(demo_root, tmp_path):
    run = fit_tiny(demo_root, tmp_path, "--model.scheduler=polynomial", "--model.schedule.warmup_epochs=2",
                   "--trainer.max_epochs=5")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = SequentialLR(opt, [LinearLR(opt, 0.01, 1.0, 2), PolynomialLR(opt, 3, 0.9)], milestones=[2])
    expected = stepped_lrs(scheduler, opt, 5)
    logged = scalars(run, "lr")
    assert [step for step, _ in logged] == [epoch * STEPS_PER_EPOCH for epoch in range(5)]  # once per epoch
    assert [value for _, value in logged] == pytest.approx(expected, rel=1e-6)
