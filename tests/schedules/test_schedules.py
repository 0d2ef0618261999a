"""The five LR schedules: closed forms, torch equivalence, and the LR that real runs log to TensorBoard."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, PolynomialLR, ReduceLROnPlateau

from segmentation.core.errors import SegError
from segmentation.schedules.plans import SCHEDULES, ScheduleOptions
from segmentation.schedules.schedulers import build_schedule

from ..helpers import only_run_dir, scalars, seg_in_process, stepped_lrs, tiny_fit_args

LR = 0.01


def optimizer(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def phased_lrs(name: str, epochs: int, **options) -> list[float]:
    """LR at the start of each epoch of a PhasedSchedule, stepped once per epoch."""
    opt = optimizer()
    scheduler = build_schedule(name, opt, epochs, ScheduleOptions(**options))
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        scheduler.step()
    return lrs


def torch_lrs(make, epochs: int) -> list[float]:
    opt = optimizer()
    return stepped_lrs(make(opt), opt, epochs)


@pytest.mark.unit
@pytest.mark.parametrize("epochs", [3, 4, 10, 50])
def test_phased_schedules_equal_torchs_schedulers(epochs):
    assert phased_lrs("cosine", epochs) == pytest.approx(
        torch_lrs(lambda o: CosineAnnealingLR(o, T_max=epochs, eta_min=LR * 0.01), epochs), rel=1e-9
    )
    assert phased_lrs("polynomial", epochs) == pytest.approx(
        torch_lrs(lambda o: PolynomialLR(o, total_iters=epochs, power=0.9), epochs), rel=1e-9
    )
    assert phased_lrs("onecycle", epochs) == pytest.approx(
        torch_lrs(lambda o: OneCycleLR(o, max_lr=LR * 10, total_steps=epochs, cycle_momentum=False), epochs),
        rel=1e-9,
    )
    assert phased_lrs("none", epochs) == [LR] * epochs


@pytest.mark.unit
def test_unknown_schedule_and_missing_horizon_are_user_errors():
    assert SCHEDULES == ("none", "reduce_on_plateau", "cosine", "onecycle", "polynomial")
    with pytest.raises(SegError, match="valid names: none, reduce_on_plateau, cosine, onecycle, polynomial"):
        build_schedule("step", optimizer(), 10, ScheduleOptions())
    with pytest.raises(SegError, match="--trainer.max_epochs"):
        build_schedule("cosine", optimizer(), -1, ScheduleOptions())


@pytest.mark.unit
def test_phased_schedule_state_is_primitive_and_restores():
    scheduler = build_schedule("onecycle", optimizer(), 10, ScheduleOptions())
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    assert state["name"] == "onecycle" and all(isinstance(p, tuple) for p in state["phases"])
    opt = optimizer()
    restored = build_schedule("onecycle", opt, 10, ScheduleOptions())
    restored.load_state_dict(state)
    restored.step()
    scheduler.step()
    assert restored.get_last_lr() == scheduler.get_last_lr()


# --- real runs: the LR logged per epoch equals the closed form --------------------------------------


def closed_form(name: str, epoch: int, epochs: int, **p) -> float:
    """The seed design's formulas, written out independently of segmentation.schedules."""
    if name == "none":
        return LR
    if name == "cosine":
        eta = LR * p["cosine_eta_min_factor"]
        return eta + (LR - eta) * (1 + math.cos(math.pi * epoch / epochs)) / 2
    if name == "polynomial":
        return LR * (1 - epoch / epochs) ** p["polynomial_power"]
    if name == "onecycle":
        peak = LR * p["onecycle_max_lr_factor"]
        initial, warmup_end = peak / p.get("onecycle_div_factor", 25), 0.3 * epochs - 1
        if epoch <= warmup_end:
            start, end, pct = initial, peak, epoch / warmup_end
        else:
            final = initial / p.get("onecycle_final_div_factor", 1e4)
            start, end, pct = peak, final, (epoch - warmup_end) / (epochs - 1 - warmup_end)
        return end + (start - end) * (math.cos(math.pi * pct) + 1) / 2
    raise AssertionError(name)


def fit_and_read(root, tmp_path, *overrides: str) -> dict[str, list[float]]:
    """Run a tiny in-process `seg fit`; return the logged `lr` and `val/dice` series."""
    code = seg_in_process(tiny_fit_args(root, "--trainer.default_root_dir", str(tmp_path), "--model.lr", str(LR),
                                        *overrides))
    assert code == 0
    run = only_run_dir(tmp_path / "lightning_logs")
    return {tag: [v for _, v in scalars(run, tag)] for tag in ("lr", "val/dice")}


@pytest.mark.parametrize(
    "name, options",
    [
        ("none", {}),
        ("cosine", {"cosine_eta_min_factor": 0.1}),
        ("polynomial", {"polynomial_power": 2.0}),
        ("onecycle", {"onecycle_max_lr_factor": 5.0, "onecycle_div_factor": 10.0, "onecycle_final_div_factor": 100.0}),
    ],
)
def test_logged_lr_follows_the_closed_form(demo_root, tmp_path, name, options):
    epochs = 5
    flags = [f"--model.schedule.{key}={value}" for key, value in options.items()]
    logged = fit_and_read(demo_root, tmp_path, f"--model.scheduler={name}", f"--trainer.max_epochs={epochs}", *flags)
    expected = [closed_form(name, e, epochs, **options) for e in range(epochs)]
    assert logged["lr"] == pytest.approx(expected, rel=1e-5)


def test_plateau_halves_after_patience_bad_epochs(demo_root, tmp_path):
    # threshold 10: no validation after the first counts as an improvement
    logged = fit_and_read(
        demo_root, tmp_path, "--model.scheduler=reduce_on_plateau", "--trainer.max_epochs=6",
        "--model.schedule.plateau_patience=1", "--model.schedule.plateau_threshold=10",
    )
    assert logged["lr"] == pytest.approx([LR, LR, LR, LR / 2, LR / 2, LR / 4])


def test_plateau_steps_only_on_epochs_that_validated(demo_root, tmp_path):
    logged = fit_and_read(
        demo_root, tmp_path, "--model.scheduler=reduce_on_plateau", "--trainer.max_epochs=8",
        "--trainer.check_val_every_n_epoch=2", "--model.schedule.plateau_patience=1",
        "--model.schedule.plateau_threshold=10",
    )
    assert len(logged["val/dice"]) == 4  # epochs 1, 3, 5, 7
    # validations 1 (best), 2 (bad 1), 3 (bad 2 > patience: halve) -> LR halves from epoch 6 on
    assert logged["lr"] == pytest.approx([LR] * 6 + [LR / 2] * 2)


def test_plateau_matches_torch_fed_with_the_logged_dice(demo_root, tmp_path):
    logged = fit_and_read(
        demo_root, tmp_path, "--model.scheduler=reduce_on_plateau", "--trainer.max_epochs=6",
        "--model.schedule.plateau_patience=0", "--model.schedule.plateau_factor=0.3",
    )
    opt = optimizer()
    reference = ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=0)
    expected = []
    for dice in logged["val/dice"]:
        expected.append(opt.param_groups[0]["lr"])
        reference.step(dice)
    assert logged["lr"] == pytest.approx(expected, rel=1e-6)
