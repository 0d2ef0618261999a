"""Deterministic fault injection: kill this process at a named point, for the crash-safety tests.

`SEG_KILL_AT=<point>:<n>` in the environment makes the n-th arrival (1-based) at
`fault_point("<point>")` send SIGKILL to this very process — no cleanup, no
`finally`, exactly what a power cut, the OOM killer or a preempted node does.
Without the variable a fault point costs one dictionary lookup.

Points (where they sit and what a kill there leaves behind):

* `checkpoint-before-rename`: a checkpoint's temporary file is written and fsynced,
  the rename onto its final name has not happened (`training.checkpointing`); the same for each hard link
  `last.ckpt` / `best.ckpt` (`training.checkpoint_writer`).
* `between-epochs`: an epoch's checkpoints are all written, the next epoch has not
  started (`training.checkpoint_writer.KillBetweenEpochs`).
* `store-before-commit`: a stored case's arrays are written, its json record (the
  commit) is not (`data.store`).

`SEG_SIGNAL_AT=<SIGNAL>:<point>[,<SIGNAL>:<point>...]` (e.g. `SIGTERM:3`, `SIGINT:val1,SIGINT:exiting`) sends
each signal to this process when the fit reaches its point (`training.preemption`): a scheduler's preemption,
or a user's second Ctrl-C, at an exact moment. Points:

* `<step>`: training step `step` has ended (global step, counted from 1; 0: when the fit is set up, before any step).
* `val<n>`: the fit's n-th validation batch (counted from 1 over this process's validations) has ended.
* `store<n>`: the n-th case of a store build is stored (`data.store`; before any run directory exists).
* `stopping`: a stop for a signal has begun; its checkpoint is not written yet.
* `exiting`: the stop's line is said; the process is about to exit.

Only rank 0 sends them; the ranks must then agree on where to stop.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENVIRONMENT_VARIABLE = "SEG_KILL_AT"
POINTS = ("checkpoint-before-rename", "between-epochs", "store-before-commit")
_arrivals: Counter = Counter()


def planned_kill() -> tuple[str, int] | None:
    """(point, n) from `SEG_KILL_AT`, or None when no kill is planned."""
    value = os.environ.get(ENVIRONMENT_VARIABLE)
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={value!r}: expected <point>:<n>, point one of {', '.join(POINTS)}")
    return point, int(count)


def fault_point(point: str) -> None:
    """Arrive at `point`; SIGKILL this process if `SEG_KILL_AT` names this arrival."""
    plan = planned_kill()
    if plan is None or plan[0] != point:
        return
    _arrivals[point] += 1
    if _arrivals[point] == plan[1]:
        os.kill(os.getpid(), signal.SIGKILL)


SIGNAL_VARIABLE = "SEG_SIGNAL_AT"


def planned_signals() -> list[tuple[signal.Signals, str]]:
    """(signal, point) of every entry of `SEG_SIGNAL_AT`, in order ([] when none is planned)."""
    value = os.environ.get(SIGNAL_VARIABLE)
    if not value:
        return []
    plans = []
    for entry in value.split(","):
        name, _, point = entry.strip().partition(":")
        named = point in ("stopping", "exiting") or point.isdigit() or any(
            point.startswith(prefix) and point[len(prefix):].isdigit() for prefix in ("val", "store"))
        if name not in signal.Signals.__members__ or not named:
            raise ValueError(f"{SIGNAL_VARIABLE}={value!r}: expected <SIGNAL>:<point>[,...], point a step number, "
                             "val<n>, store<n>, stopping or exiting; e.g. SIGTERM:3 or SIGINT:val1,SIGINT:exiting")
        plans.append((signal.Signals[name], point))
    return plans


def signal_point(point: int | str, rank: int) -> None:
    """Arrive at `point` (a training step, `val<n>`, `stopping`, `exiting`) on `rank`: send each signal planned
    there to this process (a fit reaches each point once)."""
    if rank != 0:
        return
    for sig, planned in planned_signals():
        if planned == str(point):
            os.kill(os.getpid(), sig)
