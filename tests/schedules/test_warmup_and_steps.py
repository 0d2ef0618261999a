"""Warm-up for every schedule and per-step stepping: the closed forms equal torch's own schedulers
(`SequentialLR(LinearLR, ...)`), `reduce_on_plateau` counts only after its warm-up, bad options are refused by
name, and a resume keeps every rule per step (`restore`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, OneCycleLR, PolynomialLR, SequentialLR

from segmentation.core.errors import SegError
from segmentation.schedules.plans import ScheduleOptions
from segmentation.schedules.schedulers import (
    build_schedule,
    optimizer_steps_per_epoch,
    step_after_validation,
    step_on_interval,
)

from ..helpers import stepped_lrs as lrs

LR, HORIZON, WARMUP, START = 0.1, 24, 5, 0.01


def optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)


def torch_lrs(name: str, horizon: int, count: int) -> list[float]:
    """torch's LRs of the warm-up + `name` pair: `SequentialLR(LinearLR, ...)` for cosine and polynomial; for onecycle
    (whose OneCycleLR sets the LR itself) the warm-up line to its first LR, then OneCycleLR's own values."""
    opt, rest = optimizer(), horizon - WARMUP
    if name == "onecycle":
        line = [LR * (START + (0.4 - START) * t / WARMUP) for t in range(WARMUP)]
        return line + lrs(OneCycleLR(opt, max_lr=LR * 10, total_steps=rest, cycle_momentum=False), opt, count - WARMUP)
    after = CosineAnnealingLR(opt, rest, eta_min=LR * 0.01) if name == "cosine" else PolynomialLR(opt, rest, 0.9)
    return lrs(SequentialLR(opt, [LinearLR(opt, START, 1.0, WARMUP), after], milestones=[WARMUP]), opt, count)


@pytest.mark.unit
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["cosine", "polynomial", "onecycle"])
@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_warmup_then_the_schedule_equals_torchs_sequential_pair(name, interval):
    steps_per_epoch = 3 if interval == "step" else 1
    epochs = HORIZON // steps_per_epoch
    options = ScheduleOptions(interval=interval, warmup_start_factor=START,
                              **({"warmup_steps": WARMUP} if interval == "step" else {"warmup_epochs": WARMUP}))
    ours_opt = optimizer()
    ours = build_schedule(name, ours_opt, epochs, options, steps_per_epoch)
    positions = HORIZON if name == "onecycle" else HORIZON + 1  # OneCycleLR refuses a step past its total
    assert lrs(ours, ours_opt, positions) == pytest.approx(torch_lrs(name, HORIZON, positions), rel=1e-12, abs=1e-15)


@pytest.mark.unit
def test_none_warms_up_then_stays_and_plateau_counts_only_after_the_warm_up():
    opt = optimizer()
    none = build_schedule("none", opt, None, ScheduleOptions(warmup_epochs=4, warmup_start_factor=0.2))
    assert lrs(none, opt, 7) == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.1])
    opt = optimizer()
    plateau = build_schedule("reduce_on_plateau", opt, 10, ScheduleOptions(warmup_epochs=3, warmup_start_factor=0.1,
                                                                          plateau_patience=0))
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        step_after_validation(plateau, 0.5)  # the same Dice every epoch: only counted after the warm-up
        step_on_interval(plateau)
    assert seen[:4] == pytest.approx([0.01, 0.04, 0.07, 0.1])
    assert seen[4] == pytest.approx(0.1) and seen[5] == pytest.approx(0.05)  # best set at epoch 3, reduced at 4


@pytest.mark.unit
@pytest.mark.parametrize("options, named", [
    ({"interval": "steps"}, "--model.schedule.interval steps: give one of epoch, step"),
    ({"warmup_steps": 10}, "--model.schedule.warmup_steps 10 counts optimizer steps"),
    ({"warmup_epochs": -1}, "--model.schedule.warmup_epochs -1"),
    ({"warmup_epochs": 2, "warmup_steps": 3, "interval": "step"}, "give one of them"),
    ({"warmup_start_factor": 0.0}, "--model.schedule.warmup_start_factor 0.0"),
])
def test_bad_warm_up_and_interval_options_are_refused_by_name(options, named):
    with pytest.raises(SegError, match=named.replace("(", r"\(").replace(")", r"\)")):
        ScheduleOptions(**options)


@pytest.mark.unit
def test_a_warm_up_as_long_as_the_horizon_is_refused():
    with pytest.raises(SegError, match="leaves nothing of the 5-epoch horizon"):
        build_schedule("cosine", optimizer(), 5, ScheduleOptions(warmup_epochs=5))


def trained(options: ScheduleOptions, steps: int):
    """A 4-epoch (12-step) per-step cosine stepped `steps` times: (its schedule, its optimizer, the LRs it used)."""
    opt = optimizer()
    first = build_schedule("cosine", opt, 4, options, steps_per_epoch=3)
    return first, opt, lrs(first, opt, steps)


def resumed(first, trained_opt, epochs: int, options: ScheduleOptions, lr: float = LR):
    """A schedule of `epochs` epochs (3 steps each) at `lr`, restored from `first` as Lightning restores: the
    optimizer's state (its LR is `trained_opt`'s), then the schedule's."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_schedule("cosine", opt, epochs, options, steps_per_epoch=3)
    opt.param_groups[0]["lr"] = trained_opt.param_groups[0]["lr"]
    scheduler.load_state_dict(first.state_dict())
    return scheduler, opt


@pytest.mark.unit
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_extending_a_finished_per_step_run_decays_from_its_last_step_without_a_second_warm_up():
    options = ScheduleOptions(interval="step", warmup_steps=4)
    first, opt, used = trained(options, 12)  # all 12 steps
    extended, opt2 = resumed(first, opt, 8, options)  # 24 steps
    added = lrs(extended, opt2, 13)  # steps 12 .. 24
    assert added[0] <= used[-1]
    assert all(b <= a for a, b in zip(added, added[1:]))  # no second warm-up: it only decays
    assert added[-1] == pytest.approx(LR * 0.01)  # the floor, on the new horizon's end


@pytest.mark.unit
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_horizon_change_during_the_warm_up_keeps_warming_up():
    options = ScheduleOptions(interval="step", warmup_steps=6)
    first, opt, _ = trained(options, 3)  # stopped after 3 of 6 warm-up steps
    longer, opt2 = resumed(first, opt, 8, options)
    reference_opt = optimizer()
    reference = build_schedule("cosine", reference_opt, 8, options, steps_per_epoch=3)
    assert lrs(longer, opt2, 21) == pytest.approx(lrs(reference, reference_opt, 24)[3:])


@pytest.mark.unit
def test_optimizer_steps_per_epoch_counts_accumulated_batches_and_limits():
    datamodule = SimpleNamespace(training_batches_per_epoch=lambda world_size: 10 // world_size)
    trainer = SimpleNamespace(datamodule=datamodule, world_size=1, limit_train_batches=1.0, accumulate_grad_batches=1)
    assert optimizer_steps_per_epoch(trainer) == 10
    trainer.accumulate_grad_batches = 4
    assert optimizer_steps_per_epoch(trainer) == 3  # 4 + 4 + a last, partial 2: Lightning steps it too
    trainer.world_size, trainer.accumulate_grad_batches = 2, 1
    assert optimizer_steps_per_epoch(trainer) == 5
    trainer.limit_train_batches = 3
    assert optimizer_steps_per_epoch(trainer) == 3


@pytest.mark.unit
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_new_lr_applies_from_the_first_resumed_step():
    options = ScheduleOptions(interval="step", warmup_steps=2)
    first, opt, _ = trained(options, 5)
    again, opt2 = resumed(first, opt, 4, options, lr=0.05)  # --model.lr 0.05 on the resume
    after = lrs(again, opt2, 8)  # steps 5 .. 12
    assert after[0] == pytest.approx(0.05) and after[-1] == pytest.approx(0.05 * 0.01)
    assert all(b <= a for a, b in zip(after, after[1:]))
