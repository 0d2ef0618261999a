"""What a resume does to a schedule: the rules that load a checkpoint's schedule state into a new one.

The optimizer already holds the checkpoint's LR when these run. The rules:
same schedule, horizon and lr: the state is restored as saved (exact continuation);
another `--model.lr`: the schedule is re-based on it from this epoch;
another horizon: cosine/polynomial/onecycle re-plan the remaining epochs from the current LR;
another schedule: it starts from the current LR with fresh state (nothing of the old one leaks).
Plateau keeps its counters (best, bad epochs, cooldown) whenever it continues as plateau.
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from .plans import HORIZON_SCHEDULES

# What a plateau schedule carries over a resume; its parameters (factor, patience, ...) come from the new config.
PLATEAU_COUNTERS = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "mode_worse", "epochs_done")


def apply_lrs(scheduler: LRScheduler | ReduceLROnPlateau, lrs: list[float]) -> None:
    """Set the optimizer's LR of each parameter group, as a scheduler step would."""
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)


def restore_schedule(scheduler, saved: dict) -> str:
    """Load a checkpoint's schedule state (`saved`) into a freshly configured `scheduler`; say what was done.

    `scheduler` is a `schedulers.PlateauSchedule` or `schedulers.PhasedSchedule` (see the module docstring).
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
    if isinstance(scheduler, ReduceLROnPlateau):
        return "; ".join(notes + _restore_plateau(scheduler, saved, saved_name, epoch, start))
    scheduler.last_epoch = epoch
    # `none` has no horizon to re-plan
    saved_horizon = saved.get("horizon", scheduler.horizon) if scheduler.name in HORIZON_SCHEDULES else scheduler.horizon
    if saved_name == scheduler.name and not lr_changed and saved_horizon == scheduler.horizon:
        LRScheduler.load_state_dict(scheduler, {**saved, "configured_lrs": scheduler.configured_lrs})
        return f"{scheduler.name} schedule restored as saved"
    if saved_name == scheduler.name and saved_horizon != scheduler.horizon:
        notes.append(
            f"horizon {saved_horizon} -> {scheduler.horizon} epochs: {scheduler.name} re-planned from lr "
            f"{start[0]:.3g} at epoch {scheduler.last_epoch} to its floor at epoch {scheduler.horizon - 1}"
        )
    scheduler.replan(start[0] / scheduler.base_lrs[0] if scheduler.base_lrs[0] else 1.0)
    return "; ".join(notes)


def _restore_plateau(scheduler, saved: dict, saved_name: str, epoch: int, start: list[float]) -> list[str]:
    notes = []
    if saved_name == scheduler.name:
        scheduler.__dict__.update({k: saved[k] for k in PLATEAU_COUNTERS if k in saved})
        notes.append(
            f"plateau state kept (best {scheduler.best:.4g}, {scheduler.num_bad_epochs} bad epochs, "
            f"cooldown {scheduler.cooldown_counter})"
        )
    scheduler.epochs_done = epoch
    apply_lrs(scheduler, start)
    return notes


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))
