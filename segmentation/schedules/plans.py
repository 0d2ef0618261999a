"""Each schedule's options and plan, stated once: adding a schedule means an entry here (and its fields).

The horizon-based schedules (cosine, polynomial, onecycle) are plans of closed-form
phases: the LR factor is a function of the position (the epoch, or the optimizer step with
`interval: step`), from one factor to another between two positions along a curve. Holding the
plan as data (not as torch's recursive update) is what lets a resume re-plan the remaining
positions from the current LR. A warm-up is one more phase in front: linear from
`warmup_start_factor` to the schedule's first factor, the schedule then planned over the rest
of the horizon (torch's `SequentialLR([LinearLR, <schedule>], milestones=[warm-up])`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

from ..core.errors import SegError

INTERVALS = ("epoch", "step")


@dataclass(frozen=True)
class ScheduleOptions:
    """Parameters of all schedules (`--model.schedule.<name>`); each schedule reads those with its prefix.

    Defaults are the seed design's: plateau halves the LR after 10 validations without a better
    val/dice; cosine ends at lr * 0.01; onecycle peaks at lr * 10; polynomial has power 0.9.
    """

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
    warmup_epochs: int = 0
    warmup_steps: int = 0
    warmup_start_factor: float = 0.01
    interval: str = "epoch"

    def __post_init__(self) -> None:
        """Refuse what no schedule can follow, naming the option."""
        if self.interval not in INTERVALS:
            raise SegError(f"--model.schedule.interval {self.interval}: give one of {', '.join(INTERVALS)}")
        for name in ("warmup_epochs", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SegError(f"--model.schedule.{name} {value}: give a whole number, 0 or more")
        if self.warmup_epochs and self.warmup_steps:
            raise SegError("--model.schedule.warmup_epochs and warmup_steps: give one of them")
        if self.warmup_steps and self.interval != "step":
            raise SegError(f"--model.schedule.warmup_steps {self.warmup_steps} counts optimizer steps: add "
                           f"--model.schedule.interval step, or give warmup_epochs")
        if not (0 < self.warmup_start_factor <= 1) or math.isnan(self.warmup_start_factor):
            raise SegError(f"--model.schedule.warmup_start_factor {self.warmup_start_factor}: give a factor of the "
                           f"lr in (0, 1] (the warm-up's first LR is lr x this; never 0)")

    def warmup(self, steps_per_epoch: int) -> int:
        """The warm-up's length in this interval's units (epochs, or optimizer steps)."""
        if self.interval == "step":
            return self.warmup_steps or self.warmup_epochs * steps_per_epoch
        return self.warmup_epochs


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


def with_warmup(phases: list[Phase], warmup: int, start_factor: float) -> list[Phase]:
    """`phases` (planned over the horizon after the warm-up) moved behind a linear warm-up of `warmup` positions
    from `start_factor` to their first factor (1 for a schedule without phases: `none` after its warm-up)."""
    if warmup <= 0:
        return phases
    moved = [Phase(p.start + warmup, p.end + warmup, p.start_factor, p.end_factor, p.curve) for p in phases]
    first = moved[0].start_factor if moved else 1.0
    return [Phase(0, warmup, start_factor, first, "poly:1"), *moved]


def onecycle_factors(options: ScheduleOptions) -> tuple[float, float, float]:
    """OneCycle's initial, peak and final LR as factors of the base LR (torch's div factors)."""
    peak = options.onecycle_max_lr_factor
    initial = peak / options.onecycle_div_factor
    return initial, peak, initial / options.onecycle_final_div_factor


def _onecycle_phases(epochs: int, options: ScheduleOptions) -> list[Phase]:
    initial, peak, final = onecycle_factors(options)
    warmup_end = float(options.onecycle_pct_start * epochs) - 1
    return [Phase(0, warmup_end, initial, peak, "cos"), Phase(warmup_end, epochs - 1, peak, final, "cos")]


# A re-plan never raises the LR. One that starts at or below its floor (a finished onecycle run, whose
# last epoch trained at its final LR, extended; or a floor raised above the current LR) decays from
# there by this factor over the remaining epochs instead, so every added epoch still trains at a
# decaying, non-zero LR (`--model.lr X` starts a fresh decay from X).
FLOOR_PASSED_DECAY = 0.01


@dataclass(frozen=True)
class SchedulePlan:
    """How one schedule behaves.

    Args:
        phases: its plan over a fresh run of `epochs` epochs (None: not a phased schedule).
        floor: the LR factor a re-plan ends at (and its curve), from the options.
        needs_horizon: whether it needs a finite `--trainer.max_epochs`.
        key_options: the options that describe a run of it in `seg report`.
        floor_on_last_epoch: whether the floor is the LR of the run's last epoch (onecycle, as torch's
            OneCycleLR) rather than of the epoch after it (cosine, polynomial: torch's T_max / total_iters).
    """

    phases: Callable[[int, ScheduleOptions], list[Phase]] | None
    floor: Callable[[ScheduleOptions], tuple[float, str]]
    needs_horizon: bool
    key_options: tuple[str, ...] = ()
    floor_on_last_epoch: bool = False

    def floor_epoch(self, horizon: int) -> int:
        """The epoch whose LR is the floor in a run of `horizon` epochs (so no trained epoch is at LR 0)."""
        return horizon - 1 if self.floor_on_last_epoch else horizon


# The closed forms equal torch's CosineAnnealingLR(T_max=epochs, eta_min=lr*eta_min_factor),
# PolynomialLR(total_iters=epochs, power) and OneCycleLR(max_lr=lr*max_lr_factor, total_steps=epochs)
# (LR only: momentum is not cycled).
PLANS: dict[str, SchedulePlan] = {
    "none": SchedulePlan(lambda epochs, o: [], lambda o: (1.0, "cos"), needs_horizon=False),
    "reduce_on_plateau": SchedulePlan(
        None, lambda o: (1.0, "cos"), needs_horizon=False, key_options=("plateau_patience", "plateau_factor")
    ),
    "cosine": SchedulePlan(
        lambda epochs, o: [Phase(0, epochs, 1.0, o.cosine_eta_min_factor, "cos")],
        lambda o: (o.cosine_eta_min_factor, "cos"),
        needs_horizon=True,
        key_options=("cosine_eta_min_factor",),
    ),
    "onecycle": SchedulePlan(
        _onecycle_phases,
        lambda o: (onecycle_factors(o)[2], "cos"),
        needs_horizon=True,
        key_options=("onecycle_max_lr_factor", "onecycle_pct_start"),
        floor_on_last_epoch=True,
    ),
    "polynomial": SchedulePlan(
        lambda epochs, o: [Phase(0, epochs, 1.0, 0.0, f"poly:{o.polynomial_power}")],
        lambda o: (0.0, f"poly:{o.polynomial_power}"),
        needs_horizon=True,
        key_options=("polynomial_power",),
    ),
}
SCHEDULES: tuple[str, ...] = tuple(PLANS)
ScheduleName = Literal[SCHEDULES]  # type: ignore[valid-type]  # the CLI's choices, from the registry
HORIZON_SCHEDULES = tuple(name for name, plan in PLANS.items() if plan.needs_horizon)


def plan_of(name: str) -> SchedulePlan:
    """The plan of schedule `name`; a SegError listing the valid names for an unknown one."""
    if name not in PLANS:
        raise SegError(f"unknown scheduler {name!r} (--model.scheduler); valid names: {', '.join(SCHEDULES)}")
    return PLANS[name]
