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

    Args:
        name: the user-facing schedule name, kept in the state so a resume can tell what it restores.
        phases: the plan of a fresh run.
        horizon: the run's epochs the plan was made for.
        floor: the LR factor a re-plan ends at (cosine's eta_min, polynomial's 0, onecycle's final LR).
        curve: the curve of a re-plan ("cos" or "poly:<power>").
    """

    def __init__(self, optimizer: Optimizer, name: str, phases: list[Phase], horizon: int, floor: float, curve: str):
        self.name, self.horizon, self.floor, self.curve = name, horizon, floor, curve
        self.phases = [tuple(p.__dict__.values()) for p in phases]  # plain tuples: state_dict stays primitive
        self.configured_lrs = [group["lr"] for group in optimizer.param_groups]
        self.resume_note = ""
        super().__init__(optimizer)

    def plan(self) -> list[Phase]:
        """The phases as `Phase` objects."""
        return [Phase(*p) for p in self.phases]

    def get_lr(self) -> list[float]:
        """LR of each parameter group at the current epoch (`last_epoch`)."""
        factor = factor_at(self.plan(), self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    _get_closed_form_lr = get_lr

    def state_dict(self) -> dict:
        """The schedule's state, without the resume note of this process."""
        return {k: v for k, v in super().state_dict().items() if k != "resume_note"}

    def load_state_dict(self, state: dict) -> None:
        """Restore by the resume rules (`restore_schedule`); the outcome is kept in `resume_note`."""
        self.resume_note = restore_schedule(self, state)

    def replan(self, start_factor: float) -> None:
        """From the current epoch, go from `start_factor` to the floor on the last epoch of the horizon."""
        end = max(self.horizon - 1, self.last_epoch)
        floor = start_factor if self.name == "none" else self.floor
        self.phases = [tuple(Phase(self.last_epoch, end, start_factor, floor, self.curve).__dict__.values())]
        apply_lrs(self, self.get_lr())


class PlateauSchedule(ReduceLROnPlateau):
    """torch's ReduceLROnPlateau on `val/dice` (mode max) that restores itself by the resume rules."""

    name = "reduce_on_plateau"

    def __init__(self, optimizer: Optimizer, options: "ScheduleOptions"):
        self.configured_lrs = [group["lr"] for group in optimizer.param_groups]
        self.resume_note = ""
        self.epochs_done = 0  # its own last_epoch counts validations, not epochs
        super().__init__(
            optimizer,
            mode="max",
            factor=options.plateau_factor,
            patience=options.plateau_patience,
            threshold=options.plateau_threshold,
            cooldown=options.plateau_cooldown,
            min_lr=options.plateau_min_lr,
        )

    def state_dict(self) -> dict:
        """The schedule's state, with its name, without the resume note of this process."""
        state = {k: v for k, v in super().state_dict().items() if k != "resume_note"}
        return {**state, "name": self.name}

    def load_state_dict(self, state: dict) -> None:
        """Restore by the resume rules (`restore_schedule`); the outcome is kept in `resume_note`."""
        self.resume_note = restore_schedule(self, state)


# What a plateau schedule carries over a resume; its parameters (factor, patience, ...) come from the new config.
PLATEAU_COUNTERS = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "mode_worse", "epochs_done")


def apply_lrs(scheduler: LRScheduler, lrs: list[float]) -> None:
    """Set the optimizer's LR of each parameter group, as a scheduler step would."""
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)


def restore_schedule(scheduler: LRScheduler, saved: dict) -> str:
    """Load a checkpoint's schedule state into a freshly configured `scheduler`; say what was done.

    The optimizer already holds the checkpoint's LR. The rules:
    same schedule, horizon and lr: the state is restored as saved (exact continuation);
    another `--model.lr`: the schedule is re-based on it from this epoch;
    another horizon: cosine/polynomial/onecycle re-plan the remaining epochs from the current LR;
    another schedule: it starts from the current LR with fresh state (nothing of the old one leaks).
    Plateau keeps its counters (best, bad epochs, cooldown) whenever it continues as plateau.
    """
    saved_name = saved.get("name", "unknown")
    current = [group["lr"] for group in scheduler.optimizer.param_groups]
    saved_lrs = saved.get("configured_lrs", current)
    lr_changed = not _close(saved_lrs, scheduler.configured_lrs)
    start = scheduler.configured_lrs if lr_changed else current
    epoch = int(saved.get("epochs_done", saved.get("last_epoch", 0)))
    notes = []
    if lr_changed:
        notes.append(f"lr re-based from {saved_lrs[0]:.3g} to {start[0]:.3g} (--model.lr)")
    if saved_name != scheduler.name:
        notes.append(f"schedule switched from {saved_name} to {scheduler.name}: fresh state from lr {start[0]:.3g}")
    if isinstance(scheduler, PlateauSchedule):
        if saved_name == scheduler.name:
            scheduler.__dict__.update({k: saved[k] for k in PLATEAU_COUNTERS if k in saved})
            notes.append(
                f"plateau state kept (best {scheduler.best:.4g}, {scheduler.num_bad_epochs} bad epochs, "
                f"cooldown {scheduler.cooldown_counter})"
            )
        scheduler.epochs_done = epoch
        apply_lrs(scheduler, start)
        return "; ".join(notes)
    scheduler.last_epoch = epoch
    # `none` has no horizon to re-plan
    saved_horizon = saved.get("horizon", scheduler.horizon) if scheduler.name in HORIZON_SCHEDULES else scheduler.horizon
    if saved_name == scheduler.name and not lr_changed and saved_horizon == scheduler.horizon:
        super(PhasedSchedule, scheduler).load_state_dict({**saved, "configured_lrs": scheduler.configured_lrs})
        return f"{scheduler.name} schedule restored as saved"
    if saved_name == scheduler.name and saved_horizon != scheduler.horizon:
        notes.append(
            f"horizon {saved_horizon} -> {scheduler.horizon} epochs: {scheduler.name} re-planned from lr "
            f"{start[0]:.3g} at epoch {scheduler.last_epoch} to its floor at epoch {scheduler.horizon - 1}"
        )
    scheduler.replan(start[0] / scheduler.base_lrs[0] if scheduler.base_lrs[0] else 1.0)
    return "; ".join(notes)


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))


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
        initial, peak, final = onecycle_factors(options)
        warmup_end = float(options.onecycle_pct_start * epochs) - 1
        return [Phase(0, warmup_end, initial, peak, "cos"), Phase(warmup_end, epochs - 1, peak, final, "cos")]
    raise unknown_schedule(name)


def onecycle_factors(options: ScheduleOptions) -> tuple[float, float, float]:
    """OneCycle's initial, peak and final LR as factors of the base LR (torch's div factors)."""
    peak = options.onecycle_max_lr_factor
    initial = peak / options.onecycle_div_factor
    return initial, peak, initial / options.onecycle_final_div_factor


def unknown_schedule(name: str) -> SegError:
    """The error for a schedule name seg does not know, listing the valid ones."""
    return SegError(f"unknown scheduler {name!r} (--model.scheduler); valid names: {', '.join(SCHEDULES)}")


def build_schedule(
    name: str, optimizer: Optimizer, max_epochs: Optional[int], options: ScheduleOptions
) -> LRScheduler:
    """The scheduler for schedule `name`, planned over `max_epochs` (the trainer's, the single horizon)."""
    if name not in SCHEDULES:
        raise unknown_schedule(name)
    if name == "reduce_on_plateau":
        return PlateauSchedule(optimizer, options)
    if name in HORIZON_SCHEDULES and (max_epochs is None or max_epochs < 1):
        raise SegError(f"the {name} schedule needs a finite horizon: set --trainer.max_epochs")
    floor, curve = floor_and_curve(name, options)
    return PhasedSchedule(optimizer, name, plan_for(name, max_epochs or 0, options), max_epochs or 0, floor, curve)


def floor_and_curve(name: str, options: ScheduleOptions) -> tuple[float, str]:
    """Where a re-plan of schedule `name` ends (LR factor) and along which curve."""
    if name == "cosine":
        return options.cosine_eta_min_factor, "cos"
    if name == "polynomial":
        return 0.0, f"poly:{options.polynomial_power}"
    if name == "onecycle":
        return onecycle_factors(options)[2], "cos"
    return 1.0, "cos"


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


def resume_note(scheduler: object) -> str:
    """What restoring `scheduler` from a checkpoint did (empty when nothing was restored)."""
    return getattr(scheduler, "resume_note", "")


def step_at_epoch_end(scheduler: object) -> None:
    """Lightning's per-epoch step: advances every schedule except the validation-driven one (which counts)."""
    if steps_after_validation(scheduler):
        scheduler.epochs_done = getattr(scheduler, "epochs_done", 0) + 1
    else:
        scheduler.step()


def step_after_validation(scheduler: object, dice: float) -> None:
    """Feed one validation's mean Dice to the plateau scheduler (no-op for the others)."""
    if steps_after_validation(scheduler):
        scheduler.step(dice)
