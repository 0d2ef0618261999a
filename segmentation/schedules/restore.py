"""What a resume does to a schedule: the rules that load a checkpoint's schedule state into a new one.

The optimizer already holds the checkpoint's LR when these run. The rules:
same schedule, horizon, options and lr: the state is restored as saved (exact continuation);
another horizon or other options of cosine/polynomial/onecycle: re-planned from the LR of the last
trained epoch (never above it) along the new curve to the new floor, reached on the epoch a fresh
plan of that horizon reaches it — also when the old plan had already reached its floor (a finished
run extended), so every added epoch trains at a non-zero, decaying LR;
another `--model.lr X`: a fresh decay from X, starting at the first resumed epoch;
another schedule: it starts from the current LR with fresh state (nothing of the old one leaks).
Plateau keeps its counters (best, bad epochs, cooldown) whenever it continues as plateau.
Positions are epochs, or optimizer steps with `interval: step`: every rule holds per step, and a resume that
switches the interval converts the position (steps = epochs x steps per epoch). A re-plan never repeats a
warm-up; a run whose horizon changes while it is still warming up keeps warming up (the new plan's warm-up is the
same line).
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from ..core.internals import load_scheduler_fields, set_last_lr
from .plans import HORIZON_SCHEDULES, Phase, factor_at

# What a plateau schedule carries over a resume; its parameters (factor, patience, ...) come from the new config.
PLATEAU_COUNTERS = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "mode_worse", "epochs_done")


def apply_lrs(scheduler: LRScheduler | ReduceLROnPlateau, lrs: Sequence[float | Tensor]) -> None:
    """Set the optimizer's LR of each parameter group, as a scheduler step would."""
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    set_last_lr(scheduler, lrs)


def restore_schedule(scheduler, saved: dict) -> str:
    """Load a checkpoint's schedule state (`saved`) into a freshly configured `scheduler`; say what was done.

    `scheduler` is a `schedulers.PlateauSchedule` or `schedulers.PhasedSchedule` (see the module docstring).
    """
    saved_name = saved.get("name", "unknown")
    current = [group["lr"] for group in scheduler.optimizer.param_groups]
    saved_lrs = saved.get("configured_lrs", current)
    lr_changed = not _close(saved_lrs, scheduler.configured_lrs)
    start = scheduler.configured_lrs if lr_changed else current
    epoch = position_now(scheduler, saved)
    notes = []
    if lr_changed:
        notes.append(f"lr re-based from {saved_lrs[0]:.3g} to {start[0]:.3g} (--model.lr): a fresh decay from it")
    if saved_name != scheduler.name:
        notes.append(f"schedule switched from {saved_name} to {scheduler.name}: fresh state from lr {start[0]:.3g}")
    if isinstance(scheduler, ReduceLROnPlateau):
        return "; ".join(notes + _restore_plateau(scheduler, saved, saved_name, epoch, start))
    scheduler.last_epoch = epoch
    if lr_changed or saved_name != scheduler.name:
        scheduler.replan(start[0] / scheduler.base_lrs[0] if scheduler.base_lrs[0] else 1.0, from_epoch=epoch)
        return "; ".join(notes)
    changes = plan_changes(scheduler, saved)
    if not changes:
        kept = {"configured_lrs": scheduler.configured_lrs, "fresh_phases": scheduler.fresh_phases}
        LRScheduler.load_state_dict(scheduler, {**saved, **kept})
        return f"{scheduler.name} schedule restored as saved"
    return "; ".join(notes + [_replan_from_last_trained_epoch(scheduler, saved, epoch, changes)])


def saved_position(saved: dict) -> int:
    """The position a saved schedule had reached, in its own interval."""
    return int(saved.get("epochs_done", saved.get("last_epoch", 0)))


def position_now(scheduler, saved: dict) -> int:
    """The saved position (epochs, or optimizer steps) in `scheduler`'s interval."""
    position = saved_position(saved)
    before, now = saved.get("interval", "epoch"), getattr(scheduler, "interval", "epoch")
    if before == now:
        return position
    per_epoch = int(saved.get("steps_per_epoch", scheduler.steps_per_epoch)) or 1
    return position * scheduler.steps_per_epoch if now == "step" else position // per_epoch


def plan_changes(scheduler, saved: dict) -> list[str]:
    """What makes the saved plan of the same schedule wrong now: another interval, horizon, other options."""
    changes = []
    if saved.get("interval", "epoch") != scheduler.interval:
        changes.append(f"interval {saved.get('interval', 'epoch')} -> {scheduler.interval}")
    if scheduler.name not in HORIZON_SCHEDULES:  # `none` has no horizon or options to change
        return changes
    if not changes and saved.get("horizon", scheduler.horizon) != scheduler.horizon:
        changes.append(f"horizon {saved.get('horizon')} -> {scheduler.horizon} epochs")
    saved_fresh = [tuple(phase) for phase in saved.get("fresh_phases", scheduler.fresh_phases)]
    if not changes and saved.get("horizon", scheduler.horizon) == scheduler.horizon and \
            saved_fresh != scheduler.fresh_phases:
        changes.append(f"{scheduler.name} options changed (--model.schedule.*)")
    return changes


def _replan_from_last_trained_epoch(scheduler, saved: dict, epoch: int, changes: list[str]) -> str:
    """Re-plan from the LR the last trained position had under the saved plan; the note saying so. Still inside the
    same warm-up: the new plan as planned (its warm-up is the same line), not a re-plan."""
    same_warmup = saved.get("interval") == scheduler.interval and \
        [tuple(p) for p in saved.get("phases", [])][:1] == scheduler.fresh_phases[:1]  # (the warm-up is phase 0)
    if epoch < scheduler.warmup and same_warmup:
        apply_lrs(scheduler, scheduler.get_lr())
        return f"{'; '.join(changes)}: still warming up ({epoch} of {scheduler.warmup}): the new plan continues it"
    trained = max(epoch - 1, 0)
    saved_interval = saved.get("interval", "epoch")
    saved_trained = trained if saved_interval == scheduler.interval else max(saved_position(saved) - 1, 0)
    factor = factor_at([Phase(*phase) for phase in saved.get("phases", scheduler.phases)], saved_trained)
    scheduler.replan(factor, from_epoch=trained)
    base = scheduler.base_lrs[0]
    return (f"{'; '.join(changes)}: {scheduler.name} re-planned from lr {base * factor:.3g} ({scheduler.interval} "
            f"{trained}'s, the "
            f"last trained) to {base * scheduler.plan()[-1].end_factor:.3g} at {scheduler.interval} "
            f"{scheduler.plan()[-1].end:g}"
            f", now lr {scheduler.get_last_lr()[0]:.3g}; --model.lr X would start a fresh decay from X instead")


def _restore_plateau(scheduler, saved: dict, saved_name: str, epoch: int, start: list[float]) -> list[str]:
    notes = []
    if saved_name == scheduler.name:
        load_scheduler_fields(scheduler, {k: saved[k] for k in PLATEAU_COUNTERS if k in saved})
        notes.append(
            f"plateau state kept (best {scheduler.best:.4g}, {scheduler.num_bad_epochs} bad epochs, "
            f"cooldown {scheduler.cooldown_counter})"
        )
    scheduler.epochs_done = epoch
    apply_lrs(scheduler, start)
    return notes


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))
