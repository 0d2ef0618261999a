"""The torch schedulers behind the five schedules, and how Lightning steps them.

Every schedule is stepped once per epoch, or once per optimizer step with `interval: step` (its positions
are then optimizer steps: the horizon is the run's optimizer steps, `optimizer_steps_per_epoch` x max_epochs).
The horizon-based ones are a `PhasedSchedule` over the plan of `plans.PLANS` (a warm-up in front where one is
set). `reduce_on_plateau` is torch's ReduceLROnPlateau, stepped by the module right after an epoch's validation
has produced `val/dice` — never on epochs that ran no validation, nor during its warm-up, and before that epoch's
checkpoint is written. Both restore themselves from a checkpoint by the rules of `restore`.
"""

from __future__ import annotations

import math
from dataclasses import astuple
from typing import TYPE_CHECKING, Any, Optional

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from typing_extensions import override

from ..core.constants import LR_TAG
from ..core.errors import SegError
from ..core.internals import ClosedFormScheduler
from .plans import FLOOR_PASSED_DECAY, Phase, ScheduleOptions, factor_at, plan_of, with_warmup
from .restore import apply_lrs, restore_schedule

if TYPE_CHECKING:
    from lightning.pytorch.utilities.types import LRSchedulerConfigType


class PhasedSchedule(ClosedFormScheduler):
    """An epoch-stepped LR schedule given as closed-form phases (see `plans`).

    Args:
        name: the user-facing schedule name, kept in the state so a resume can tell what it restores.
        phases: the plan of a fresh run.
        horizon: the run's epochs the plan was made for.
        floor: the LR factor a re-plan ends at (cosine's eta_min, polynomial's 0, onecycle's final LR).
        curve: the curve of a re-plan ("cos" or "poly:<power>").
        floor_epoch: the position a re-plan reaches the floor at (the fresh plan's: `SchedulePlan.floor_epoch`).
        interval: what a position is: an epoch, or an optimizer step.
        warmup: the warm-up's length in positions (0: none).
        steps_per_epoch: optimizer steps per epoch (to convert positions when a resume changes the interval).
    """

    def __init__(self, optimizer: Optimizer, name: str, phases: list[Phase], horizon: int, floor: float, curve: str,
                 floor_epoch: int, interval: str = "epoch", warmup: int = 0, steps_per_epoch: int = 1):
        self.name, self.horizon, self.floor, self.curve, self.floor_epoch = name, horizon, floor, curve, floor_epoch
        self.interval, self.warmup, self.steps_per_epoch = interval, warmup, steps_per_epoch
        self.phases = [astuple(p) for p in phases]  # plain tuples: state_dict stays primitive
        self.fresh_phases = list(self.phases)  # the plan of this horizon and these options, before any re-plan
        self.configured_lrs = [group["lr"] for group in optimizer.param_groups]
        self.resume_note = ""
        super().__init__(optimizer)

    def plan(self) -> list[Phase]:
        """The phases as `Phase` objects."""
        return [Phase(*p) for p in self.phases]

    @override
    def get_lr(self) -> list[float | Tensor]:
        """LR of each parameter group at the current epoch (`last_epoch`)."""
        factor = factor_at(self.plan(), self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    @override
    def state_dict(self) -> dict:
        """The schedule's state, without the resume note of this process."""
        return {k: v for k, v in super().state_dict().items() if k != "resume_note"}

    @override
    def load_state_dict(self, state: dict) -> None:
        """Restore by the resume rules (`restore.restore_schedule`); the outcome is kept in `resume_note`."""
        self.resume_note = restore_schedule(self, state)

    def replan(self, start_factor: float, from_epoch: int) -> None:
        """Go from `start_factor` at `from_epoch` to the floor at `floor_epoch`; set the current epoch's LR."""
        end = max(self.floor_epoch, from_epoch + 1)
        floor = self.floor if start_factor > self.floor else start_factor * FLOOR_PASSED_DECAY
        floor = start_factor if self.name == "none" else floor
        self.phases = [astuple(Phase(from_epoch, end, start_factor, floor, self.curve))]
        apply_lrs(self, self.get_lr())


class PlateauSchedule(ReduceLROnPlateau):
    """torch's ReduceLROnPlateau on `val/dice` (mode max) that restores itself by the resume rules; with a warm-up,
    the LR rises linearly over its first `warmup` positions and validations count only after it."""

    name = "reduce_on_plateau"

    def __init__(self, optimizer: Optimizer, options: ScheduleOptions, warmup: int = 0, steps_per_epoch: int = 1):
        self.configured_lrs = [group["lr"] for group in optimizer.param_groups]
        self.resume_note = ""
        self.epochs_done = 0  # positions (epochs, or steps with interval step): its own last_epoch counts validations
        self.interval, self.warmup, self.steps_per_epoch = options.interval, warmup, steps_per_epoch
        self.warmup_phases = [astuple(p) for p in with_warmup([], warmup, options.warmup_start_factor)]
        super().__init__(
            optimizer,
            mode="max",
            factor=options.plateau_factor,
            patience=options.plateau_patience,
            threshold=options.plateau_threshold,
            cooldown=options.plateau_cooldown,
            min_lr=options.plateau_min_lr,
        )
        self.warm(0)

    def warm(self, position: int) -> None:
        """During the warm-up (and at its end), set the LR of `position` on the warm-up's line."""
        if position <= self.warmup and self.warmup:
            factor = factor_at([Phase(*p) for p in self.warmup_phases], position)
            apply_lrs(self, [lr * factor for lr in self.configured_lrs])

    def in_warmup(self) -> bool:
        """Whether the warm-up is still running (validations do not count then)."""
        return self.epochs_done < self.warmup

    @override
    def state_dict(self) -> dict:
        """The schedule's state, with its name, without the resume note of this process."""
        state = {k: v for k, v in super().state_dict().items() if k != "resume_note"}
        return {**state, "name": self.name}

    @override
    def load_state_dict(self, state: dict) -> None:
        """Restore by the resume rules (`restore.restore_schedule`); the outcome is kept in `resume_note`."""
        self.resume_note = restore_schedule(self, state)


def build_schedule(
    name: str, optimizer: Optimizer, max_epochs: Optional[int], options: ScheduleOptions, steps_per_epoch: int = 1
) -> LRScheduler | ReduceLROnPlateau:
    """The scheduler for schedule `name`, planned over `max_epochs` (the trainer's, the single horizon) — in optimizer
    steps with `interval: step` (`steps_per_epoch` of them per epoch) — behind its warm-up."""
    plan = plan_of(name)
    per_epoch = steps_per_epoch if options.interval == "step" else 1
    warmup = options.warmup(steps_per_epoch)
    if plan.phases is None:
        return PlateauSchedule(optimizer, options, warmup, steps_per_epoch)
    if plan.needs_horizon and (max_epochs is None or max_epochs < 1):
        raise SegError(f"the {name} schedule needs a finite horizon: set --trainer.max_epochs")
    horizon = (max_epochs or 0) * per_epoch if max_epochs and max_epochs > 0 else 0
    if plan.needs_horizon and warmup >= horizon:
        raise SegError(f"--model.schedule.warmup_{'steps' if options.warmup_steps else 'epochs'}: the warm-up "
                       f"({warmup} {options.interval}s) leaves nothing of the {horizon}-{options.interval} horizon "
                       f"for the {name} schedule; shorten it or raise --trainer.max_epochs")
    floor, curve = plan.floor(options)
    phases = with_warmup(plan.phases(horizon - warmup, options), warmup, options.warmup_start_factor)
    floor_at = plan.floor_epoch(horizon - warmup) + warmup
    return PhasedSchedule(optimizer, name, phases, horizon, floor, curve, floor_at, options.interval, warmup,
                          steps_per_epoch)


def lightning_scheduler_config(scheduler: LRScheduler | ReduceLROnPlateau) -> LRSchedulerConfigType:
    """The `lr_scheduler` entry for `configure_optimizers`.

    Lightning is told the plateau scheduler is not one (`reduce_on_plateau:
    False`), so it neither demands nor re-reads a stale `val/dice`; the module
    steps it after validation instead (see `steps_after_validation`).
    """
    interval = getattr(scheduler, "interval", "epoch")
    return {"scheduler": scheduler, "interval": interval, "frequency": 1, "name": LR_TAG, "reduce_on_plateau": False}


def steps_after_validation(scheduler: object) -> bool:
    """Whether `scheduler` is stepped with the validation Dice rather than at every epoch end."""
    return isinstance(scheduler, ReduceLROnPlateau)


def resume_note(scheduler: object) -> str:
    """What restoring `scheduler` from a checkpoint did (empty when nothing was restored)."""
    return getattr(scheduler, "resume_note", "")


def step_on_interval(scheduler: Any) -> None:
    """Lightning's step at each epoch end (or optimizer step, `interval: step`): advances every schedule; the
    validation-driven one only counts (and warms up)."""
    if steps_after_validation(scheduler):
        scheduler.epochs_done = getattr(scheduler, "epochs_done", 0) + 1
        scheduler.warm(scheduler.epochs_done)
    else:
        scheduler.step()


def step_after_validation(scheduler: Any, dice: float) -> None:
    """Feed one validation's mean Dice to the plateau scheduler (no-op for the others; nothing during its
    warm-up: patience counts only after it)."""
    if steps_after_validation(scheduler) and not scheduler.in_warmup():
        scheduler.step(dice)


def optimizer_steps_per_epoch(trainer: Any) -> int:
    """Optimizer steps in one training epoch: the datamodule's batches per epoch (known without building the
    loader, which `configure_optimizers` must not: the loops are not restored yet on a resume), limited by
    `limit_train_batches`, over `accumulate_grad_batches` (Lightning steps a last, partial accumulation too)."""
    batches = trainer.datamodule.training_batches_per_epoch(trainer.world_size)
    limit = trainer.limit_train_batches
    if isinstance(limit, int):
        batches = min(batches, limit)
    elif limit is not None and limit < 1.0:
        batches = max(1, int(batches * limit))
    return max(1, math.ceil(batches / max(1, trainer.accumulate_grad_batches)))
