"""One run of a batch: its `seg fit` child process, its log, its run record, its status; and the batch's summary.

Every launcher runs a run through `execute`: serially, several at once (`--launcher local`), or as the task of a
SLURM array (`seg batch-task`).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from ..core.constants import PREEMPTED_EXIT
from ..core.formatting import format_duration
from ..core.handoff import RUN_RECORD_VARIABLE, read_run_record, seg_command
from .batch_plan import Run
from .batch_state import BatchState, best_dice
from .signal_relay import SignalRelay

PREEMPTED_STATUS = "preempted (exit 75: the batch continues it when run again)"


def fit_command(run: Run, prefix: list[str]) -> list[str]:
    """The `seg fit` command line of `run` after `prefix` (`srun ...`): continued from its run directory's newest
    good checkpoint, or new."""
    resume = [f"--ckpt_path={run.run_dir}"] if run.action == "continue" else []
    return [*prefix, *seg_command(), "fit", *run.fit_args, *resume]


def execute(run: Run, state: BatchState, epochs: int, relay: SignalRelay, echo: Callable[[str], object],
            env: Optional[dict[str, str]] = None, prefix: Optional[list[str]] = None) -> int:
    """Run `seg fit` for `run`, writing its output to `<batch folder>/<run>.log` and through `echo`; record its run
    directory as soon as the fit names it; fill in status, time and results. `env`: variables for the child; `prefix`:
    what starts it (`srun`). Returns the fit's exit status."""
    state.folder.mkdir(parents=True, exist_ok=True)
    log_path = state.folder / f"{run.name}.log"
    record_path = state.folder / f"{run.name}.run.json"  # the fit's run record (core.handoff)
    record_path.unlink(missing_ok=True)
    started = time.monotonic()
    with open(log_path, "a") as log:
        process = subprocess.Popen(fit_command(run, prefix or []), env={**os.environ, **(env or {}),
                                                          RUN_RECORD_VARIABLE: str(record_path)},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)  # (signals reach it once: relayed)
        relay.add(process)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            echo(line)
            if run.status != "running" and take_run_record(run, record_path, state, epochs):
                relay.ready(process)
        code = process.wait()
        relay.remove(process)
        take_run_record(run, record_path, state, epochs)
    run.seconds = time.monotonic() - started
    record_outcome(run, code, log_path, state, epochs)
    return code


def record_outcome(run: Run, code: int, log_path: Path, state: BatchState, epochs: int) -> None:
    """The run's status from its exit status, saved with its preemption and failure counts."""
    saved = state.read().get(run.name, {})
    counts: dict = {}
    if code == 0:
        run.status, counts["failed_at_epochs"] = "ok", []
    elif code == PREEMPTED_EXIT:
        run.status, counts["preemptions"] = PREEMPTED_STATUS, int(saved.get("preemptions", 0)) + 1
    else:
        run.status = f"failed (exit {code}, log {log_path})"
        counts["failed_at_epochs"] = [*saved.get("failed_at_epochs", []), trained_epochs(run.run_dir)]
    state.record(run, epochs, seconds=round(float(saved.get("seconds", 0.0)) + run.seconds, 1), **counts)
    if run.run_dir is not None:
        run.best = best_dice(run.run_dir)


def trained_epochs(run_dir: Optional[Path]) -> int:
    """How many epochs a run directory has a checkpoint of (`epoch=<E>.ckpt`: E + 1), 0 for none."""
    if run_dir is None:
        return 0
    numbers = [int(p.stem.split("=")[1]) for p in (run_dir / "checkpoints").glob("epoch=*.ckpt")
               if p.stem.split("=")[1].isdigit()]
    return max(numbers) + 1 if numbers else 0


def take_run_record(run: Run, record_path: Path, state: BatchState, epochs: int) -> bool:
    """Once the fit has written its run record: take its run directory, mark the run running and save the state;
    whether it has."""
    record = read_run_record(record_path)
    if record is not None and run.status != "running":
        run.run_dir, run.status = Path(record["run_dir"]), "running"
        state.record(run, epochs)
    return record is not None


def summary(runs: list[Run]) -> str:
    """The closing table of the batch."""
    lines = ["| run | status | best val/dice | epoch | time | best checkpoint |",
             "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        dice, epoch = (f"{run.best[0]:.4f}", str(run.best[1])) if run.best else ("—", "—")
        checkpoint = run.run_dir / "checkpoints" / "best.ckpt" if run.run_dir else "—"
        duration = format_duration(run.seconds)
        lines.append(f"| {run.name} | {run.status} | {dice} | {epoch} | {duration} | {checkpoint} |")
    return "\n".join(lines)
