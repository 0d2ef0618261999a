"""The torch schedulers behind the five schedules, and how Lightning steps them.

Every schedule is stepped once per epoch. The horizon-based ones are a `PhasedSchedule`
over the plan of `plans.PLANS`. `reduce_on_plateau` is torch's ReduceLROnPlateau,
stepped by the module right after an epoch's validation has produced `val/dice` —
never on epochs that ran no validation, and before that epoch's checkpoint is written.
Both restore themselves from a checkpoint by the rules of `restore`.
"""

from __future__ import annotations

from dataclasses import astuple
from typing import TYPE_CHECKING, Any, Optional

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from typing_extensions import override

from ..core.constants import LR_TAG
from ..core.errors import SegError
from ..core.internals import ClosedFormScheduler
from .plans import FLOOR_PASSED_DECAY, Phase, ScheduleOptions, factor_at, plan_of
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
        floor_epoch: the epoch a re-plan reaches the floor at (the fresh plan's: `SchedulePlan.floor_epoch`).
    """

    def __init__(self, optimizer: Optimizer, name: str, phases: list[Phase], horizon: int, floor: float, curve: str,
                 floor_epoch: int):
        self.name, self.horizon, self.floor, self.curve, self.floor_epoch = name, horizon, floor, curve, floor_epoch
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
    """torch's ReduceLROnPlateau on `val/dice` (mode max) that restores itself by the resume rules."""

    name = "reduce_on_plateau"

    def __init__(self, optimizer: Optimizer, options: ScheduleOptions):
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
    name: str, optimizer: Optimizer, max_epochs: Optional[int], options: ScheduleOptions
) -> LRScheduler | ReduceLROnPlateau:
    """The scheduler for schedule `name`, planned over `max_epochs` (the trainer's, the single horizon)."""
    plan = plan_of(name)
    if plan.phases is None:
        return PlateauSchedule(optimizer, options)
    if plan.needs_horizon and (max_epochs is None or max_epochs < 1):
        raise SegError(f"the {name} schedule needs a finite horizon: set --trainer.max_epochs")
    floor, curve = plan.floor(options)
    epochs = max_epochs or 0
    return PhasedSchedule(optimizer, name, plan.phases(epochs, options), epochs, floor, curve, plan.floor_epoch(epochs))


def lightning_scheduler_config(scheduler: LRScheduler | ReduceLROnPlateau) -> LRSchedulerConfigType:
    """The `lr_scheduler` entry for `configure_optimizers`.

    Lightning is told the plateau scheduler is not one (`reduce_on_plateau:
    False`), so it neither demands nor re-reads a stale `val/dice`; the module
    steps it after validation instead (see `steps_after_validation`).
    """
    return {"scheduler": scheduler, "interval": "epoch", "frequency": 1, "name": LR_TAG, "reduce_on_plateau": False}


def steps_after_validation(scheduler: object) -> bool:
    """Whether `scheduler` is stepped with the validation Dice rather than at every epoch end."""
    return isinstance(scheduler, ReduceLROnPlateau)


def resume_note(scheduler: object) -> str:
    """What restoring `scheduler` from a checkpoint did (empty when nothing was restored)."""
    return getattr(scheduler, "resume_note", "")


def step_at_epoch_end(scheduler: Any) -> None:
    """Lightning's per-epoch step: advances every schedule except the validation-driven one (which counts)."""
    if steps_after_validation(scheduler):
        scheduler.epochs_done = getattr(scheduler, "epochs_done", 0) + 1
    else:
        scheduler.step()


def step_after_validation(scheduler: Any, dice: float) -> None:
    """Feed one validation's mean Dice to the plateau scheduler (no-op for the others)."""
    if steps_after_validation(scheduler):
        scheduler.step(dice)
