"""Deterministic fault injection: kill this process at a named point, for the crash-safety tests.

`SEG_KILL_AT=<point>:<n>` in the environment makes the n-th arrival (1-based) at
`fault_point("<point>")` send SIGKILL to this very process — no cleanup, no
`finally`, exactly what a power cut, the OOM killer or a preempted node does.
Without the variable a fault point costs one dictionary lookup.

Points (where they sit and what a kill there leaves behind):

* `checkpoint-before-rename`: a checkpoint's temporary file is written and fsynced,
  the rename onto its final name has not happened (`training.checkpointing`).
* `between-epochs`: an epoch's checkpoints are all written, the next epoch has not
  started (`training.checkpointing.KillBetweenEpochs`).
* `store-before-commit`: a stored case's arrays are written, its json record (the
  commit) is not (`data.store`).

`SEG_SIGNAL_AT=<SIGNAL>:<step>` (e.g. `SIGTERM:3`) sends that signal to this process when the
training step `step` has ended (global step, counted from 1; 0: when the fit is set up, before any
step): a scheduler's preemption at an exact point (`training.preemption`). Only rank 0 sends it;
the ranks must then agree on where to stop.
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


def planned_signal() -> tuple[signal.Signals, int] | None:
    """(signal, step) from `SEG_SIGNAL_AT`, or None when no signal is planned."""
    value = os.environ.get(SIGNAL_VARIABLE)
    if not value:
        return None
    name, _, step = value.partition(":")
    if name not in signal.Signals.__members__ or not step.isdigit():
        raise ValueError(f"{SIGNAL_VARIABLE}={value!r}: expected <SIGNAL>:<step>, e.g. SIGTERM:3")
    return signal.Signals[name], int(step)


def signal_point(step: int, rank: int) -> None:
    """The end of training step `step` on `rank`: send the planned signal to this process if it is due."""
    plan = planned_signal()
    if plan is not None and rank == 0 and plan[1] == step:
        os.kill(os.getpid(), plan[0])
