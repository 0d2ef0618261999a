"""`seg batch-task BATCH_FOLDER`: one task of a batch's SLURM job array (what its `array.sbatch` runs).

The task finds its run in the batch's `state.json` by `$SLURM_ARRAY_JOB_ID_$SLURM_ARRAY_TASK_ID` and runs that run's
`seg fit` (continued from its run directory's newest good checkpoint when it has one), recording its status there.
SIGUSR1 (`--signal=B:USR1@T`, `scancel --batch --signal=USR1`) is passed on: the fit checkpoints, requeues this task
and exits 75. A task started more than `--max-requeues` times passes SIGUSR1 on as SIGTERM instead: the fit
checkpoints and exits 75 without a requeue, and the run's status says so (the batch command again continues it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ...core.constants import PREEMPTED_EXIT
from ...core.errors import SegError
from ..batch_run import execute
from ..batch_state import BatchState, has_checkpoint, run_from
from ..command_parser import CommandParser
from ..signal_relay import SignalRelay


def parse(argv: list[str]) -> argparse.Namespace:
    """The task's options (written into the array script by `seg batch --launcher slurm`)."""
    parser = CommandParser(prog="seg batch-task", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the batch folder (lightning_logs/batches/NAME)")
    parser.add_argument("--max-requeues", type=int, default=3, help="requeues after which SIGUSR1 stops the run")
    parser.add_argument("--srun", action="store_true", help="start the fit with srun (DDP: one process per device)")
    return parser.parse_args(argv)


def this_task() -> str:
    """`<array job>_<task>` of this process, from SLURM's environment."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if not array or not task:
        raise SegError("seg batch-task runs inside a SLURM array task (SLURM_ARRAY_JOB_ID and SLURM_ARRAY_TASK_ID "
                       "unset); start a batch with seg batch --launcher slurm")
    return f"{array}_{task}"


def run_of(state: BatchState, job: str) -> tuple[str, dict]:
    """The run name and state entry that `seg batch` gave to task `job`."""
    for name, saved in state.runs.items():
        if saved.get("slurm_job") == job:
            return name, saved
    raise SegError(f"{state.path}: no run is recorded for SLURM task {job} (was the batch resubmitted? "
                   f"seg batch --status {state.folder.name})")


def main(argv: list[str]) -> int:
    """Run this task's run; exit with its `seg fit`'s status (75: preempted)."""
    args = parse(argv)
    state = BatchState(args.folder)
    job = this_task()
    name, saved = run_of(state, job)
    starts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    run = run_from(saved)
    run.action = "continue" if has_checkpoint(run.run_dir) else "start"
    requeue = starts < args.max_requeues
    print(f"seg batch-task: {name} (task {job}, start {starts + 1}; {run.action})", flush=True)
    state.update(name, status="running")  # (before the fit names its directory: not "pending" while it runs)

    def translate(signum: int) -> int:
        return signum if requeue or signum != signal.SIGUSR1 else signal.SIGTERM

    with SignalRelay(translate) as relay:
        code = execute(run, state, int(saved["epochs"]), relay, echo=sys.stdout.write,
                       prefix=["srun", f"--ntasks-per-node={os.environ.get('SLURM_NTASKS_PER_NODE', '1')}"]
                       if args.srun else [])
    if code == PREEMPTED_EXIT and not requeue:
        preemptions = state.read().get(name, {}).get("preemptions", 0)
        state.update(name, status=f"preempted {preemptions} times: not requeued (--max-requeues "
                                  f"{args.max_requeues}); the batch command again continues it")
    return code
