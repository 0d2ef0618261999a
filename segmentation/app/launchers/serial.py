"""The serial launcher: one run after another in this process's machine; a preempted run stops the batch."""

from __future__ import annotations

import sys

from ..batch_plan import Run
from ..batch_run import execute
from ..batch_state import BatchState
from ..signal_relay import SignalRelay


def run_serially(runs: list[Run], state: BatchState, epochs: int, relay: SignalRelay) -> None:
    """Run every run not skipped, in order, until one is preempted or a signal came (the rest waits for the batch
    command to be run again)."""
    for run in runs:
        if run.action == "skip" or relay.received:
            continue
        print(f"\n=== {run.name} ({run.action}) ===", flush=True)
        execute(run, state, epochs, relay, echo=sys.stdout.write)
        if run.status.startswith("preempted"):
            break  # the machine is being taken away
