"""The five learning-rate schedules, how they are stepped, and how each behaves on resume.

Every schedule is stepped once per epoch. The horizon-based ones (cosine,
polynomial, onecycle) are a `PhasedSchedule`: the LR is a closed-form function
of the epoch over a list of phases, each a curve from one LR factor to another
between two epochs. Holding the plan as data (not as torch's recursive update)
is what lets a resume re-plan the remaining epochs from the current LR.

`reduce_on_plateau` is torch's ReduceLROnPlateau, stepped by the module right
after an epoch's validation has produced `val/dice` — never on epochs that ran
no validation, and before that epoch's checkpoint is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from .errors import SegError

ScheduleName = Literal["none", "reduce_on_plateau", "cosine", "onecycle", "polynomial"]
SCHEDULES = ("none", "reduce_on_plateau", "cosine", "onecycle", "polynomial")
HORIZON_SCHEDULES = ("cosine", "onecycle", "polynomial")


@dataclass(frozen=True)
class ScheduleOptions:
    """Parameters of all schedules; each schedule reads its own (defaults from the seed design)."""

    plateau_factor: float = 0.5
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    plateau_cooldown: int = 0
    plateau_min_lr: float = 0.0
    cosine_eta_min_factor: float = 0.01
    onecycle_max_lr_factor: float = 10.0
    onecycle_pct_start: float = 0.3
    onecycle_div_factor: float = 25.0
    onecycle_final_div_factor: float = 1e4
    polynomial_power: float = 0.9


@dataclass(frozen=True)
class Phase:
    """The LR factor (of the base LR) moving from `start_factor` at `start` to `end_factor` at `end` epochs.

    `curve` is "cos" (half cosine) or "poly:<power>" (1 - t) ** power.
    """

    start: float
    end: float
    start_factor: float
    end_factor: float
    curve: str

    def factor(self, epoch: float) -> float:
        """The LR factor at `epoch`, clamped to the phase's ends."""
        span = self.end - self.start
        t = 1.0 if span <= 0 else min(max((epoch - self.start) / span, 0.0), 1.0)
        delta = self.start_factor - self.end_factor
        if self.curve == "cos":
            return self.end_factor + delta * (1.0 + math.cos(math.pi * t)) / 2.0
        if self.curve.startswith("poly:"):
            return self.end_factor + delta * (1.0 - t) ** float(self.curve[5:])
        raise ValueError(f"unknown phase curve {self.curve!r}")


def factor_at(phases: list[Phase], epoch: float) -> float:
    """The LR factor at `epoch` of a plan; before the plan its first value, after it its last."""
    if not phases:
        return 1.0
    for phase in phases:
        if epoch <= phase.end:
            return phase.factor(epoch)
    return phases[-1].end_factor


class PhasedSchedule(LRScheduler):
    """An epoch-stepped LR schedule given as closed-form phases (see module docstring).

    `name` is the user-facing schedule name, kept in the state so that a resume
    can tell which schedule a checkpoint was trained with.
    """

    def __init__(self, optimizer: Optimizer, name: str, phases: list[Phase], last_epoch: int = -1):
        self.name = name
        self.phases = [tuple(p.__dict__.values()) for p in phases]  # plain tuples: state_dict stays primitive
        super().__init__(optimizer, last_epoch)

    def plan(self) -> list[Phase]:
        """The phases as `Phase` objects."""
        return [Phase(*p) for p in self.phases]

    def get_lr(self) -> list[float]:
        """LR of each parameter group at the current epoch (`last_epoch`)."""
        factor = factor_at(self.plan(), self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr


def plan_for(name: str, epochs: int, options: ScheduleOptions) -> list[Phase]:
    """The phases of schedule `name` over a fresh run of `epochs` epochs.

    The closed forms equal torch's CosineAnnealingLR(T_max=epochs,
    eta_min=lr*eta_min_factor), PolynomialLR(total_iters=epochs, power) and
    OneCycleLR(max_lr=lr*max_lr_factor, total_steps=epochs) (LR only: momentum
    is not cycled).
    """
    if name == "none":
        return []
    if name == "cosine":
        return [Phase(0, epochs, 1.0, options.cosine_eta_min_factor, "cos")]
    if name == "polynomial":
        return [Phase(0, epochs, 1.0, 0.0, f"poly:{options.polynomial_power}")]
    if name == "onecycle":
        peak = options.onecycle_max_lr_factor
        initial = peak / options.onecycle_div_factor
        final = initial / options.onecycle_final_div_factor
        warmup_end = float(options.onecycle_pct_start * epochs) - 1
        return [Phase(0, warmup_end, initial, peak, "cos"), Phase(warmup_end, epochs - 1, peak, final, "cos")]
    raise SegError(f"unknown scheduler {name!r} (--model.scheduler); valid names: {', '.join(SCHEDULES)}")


def build_schedule(
    name: str, optimizer: Optimizer, max_epochs: Optional[int], options: ScheduleOptions
) -> LRScheduler:
    """The scheduler for schedule `name`, planned over `max_epochs` (the trainer's, the single horizon)."""
    if name not in SCHEDULES:
        raise SegError(f"unknown scheduler {name!r} (--model.scheduler); valid names: {', '.join(SCHEDULES)}")
    if name == "reduce_on_plateau":
        return ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=options.plateau_factor,
            patience=options.plateau_patience,
            threshold=options.plateau_threshold,
            cooldown=options.plateau_cooldown,
            min_lr=options.plateau_min_lr,
        )
    if name in HORIZON_SCHEDULES and (max_epochs is None or max_epochs < 1):
        raise SegError(f"the {name} schedule needs a finite horizon: set --trainer.max_epochs")
    return PhasedSchedule(optimizer, name, plan_for(name, max_epochs or 0, options))


def lightning_scheduler_config(scheduler: LRScheduler) -> dict:
    """The `lr_scheduler` entry for `configure_optimizers`.

    Lightning is told the plateau scheduler is not one (`reduce_on_plateau:
    False`), so it neither demands nor re-reads a stale `val/dice`; the module
    steps it after validation instead (see `steps_after_validation`).
    """
    return {"scheduler": scheduler, "interval": "epoch", "frequency": 1, "name": "lr", "reduce_on_plateau": False}


def steps_after_validation(scheduler: object) -> bool:
    """Whether `scheduler` is stepped with the validation Dice rather than at every epoch end."""
    return isinstance(scheduler, ReduceLROnPlateau)


def step_at_epoch_end(scheduler: object) -> None:
    """Lightning's per-epoch step: advances every schedule except the validation-driven one."""
    if not steps_after_validation(scheduler):
        scheduler.step()


def step_after_validation(scheduler: object, dice: float) -> None:
    """Feed one validation's mean Dice to the plateau scheduler (no-op for the others)."""
    if steps_after_validation(scheduler):
        scheduler.step(dice)
