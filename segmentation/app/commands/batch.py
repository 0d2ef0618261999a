"""Batches: several `seg fit` runs in a row (architectures x schedules), planned, isolated, summarised.

`seg batch --config configs/brats.yaml --archs unet segresnet --epochs 50` prints a
plan first (each run's measured `seg estimate` of its whole `seg fit` process), then runs each as its own `seg fit`
process (a failed run does not stop the others; its log is kept), and ends with a
summary: run, status, best val/dice and its epoch, wall time, best checkpoint.
`make batch1|batch2|batch3` call it for BraTS, MSD liver and TotalSegmentator.

`--seeds 0 1 2` trains every run once per seed (`app.seed_groups`: the initial weights and the sampling vary, the
split does not), each in `<dataset>_<arch>_<schedule>_seed<S>`; `seg report` then gives mean ± sd over the seeds.

A batch resumes: `lightning_logs/batches/<name>/state.json` records each run's directory (from the moment it
starts), status and epochs. The same command again skips finished runs, continues unfinished ones (failed,
preempted, killed) from the newest good checkpoint of their own run directory and starts the missing ones; with
more `--epochs` every run continues to the new horizon (`--schedulers` other than before switches the schedule as
`seg fit` does). `--fresh` starts every run anew. SIGTERM, SIGUSR1 and SIGINT are passed to the run in progress,
which checkpoints and exits 75; the batch then stops, records it and exits 75 too.

Where the runs run (`--launcher`): `serial` (above); `local --parallel N`, N runs at once on this machine, each with
its own GPUs or share of the CPU threads (`app.launchers.local`); `slurm`, one SLURM job array, one task per run,
submitted with `sbatch`, after which the command returns (`app.launchers.slurm`). `seg batch --status NAME` shows
where every run stands (`app.batch_status`).
"""

from __future__ import annotations

import argparse
import subprocess

from ...core.constants import PREEMPTED_EXIT
from ...core.formatting import format_duration
from ...core.handoff import seg_command
from ...core.storage import write_text_atomically
from ...measure.estimate import Estimate
from ..batch_options import parse
from ..batch_plan import Run, plan_runs
from ..batch_run import summary
from ..batch_state import BatchState, batch_folder, decide
from ..batch_status import status_report
from ..launchers import slurm
from ..launchers.local import default_parallel, run_in_parallel, slot_environments
from ..launchers.serial import run_serially
from ..signal_relay import SignalRelay
from .estimate import estimate_in_child


def print_plan(runs: list[Run], args: argparse.Namespace) -> None:
    """Each run with its estimate and notes (continues, switches, skipped), and the measured total."""
    where = {"serial": "one after another", "local": f"{args.parallel} at once on this machine",
             "slurm": "as one SLURM job array" + (f", {args.max_parallel} at once" if args.max_parallel else "")}
    print(f"batch {args.name}: {len(runs)} runs x {args.epochs} epochs ({' + '.join(args.config)}), "
          f"{where[args.launcher]}", flush=True)
    for run in runs:
        estimate = run.estimate.short() if run.estimate is not None else "n/a"
        print(f"  {run.name:<32} estimate {estimate}  {'; '.join(run.notes)}", flush=True)
    known = [r.estimate.projected_seconds for r in runs if r.estimate is not None]
    if known:
        print(f"  total (measured on this machine): {format_duration(sum(known))}; each estimate is its whole "
              f"`seg fit` process: start-up, data, every epoch's steps, validation and checkpoints, exit", flush=True)


def measure_estimates(runs: list[Run]) -> None:
    """Each run's measured estimate of its whole `seg fit` (a continued run's: that of the whole run)."""
    for run in runs:
        if run.action != "skip":
            estimate = estimate_in_child(run.fit_args)
            if isinstance(estimate, Estimate):
                run.estimate = estimate
            else:
                run.notes.append(f"estimate failed: {estimate}"[:200])


def submit_to_slurm(runs: list[Run], state: BatchState, args: argparse.Namespace) -> int:
    """Submit the array and return: the plan and its job are in state.json; `--status` follows it."""
    job, submitted = slurm.submit(runs, state, args)
    if not submitted:
        print(f"batch {args.name}: nothing to submit (every run has finished or is queued); "
              f"seg batch --status {args.name}", flush=True)
        return 0
    print(f"batch {args.name}: SLURM array {job} submitted, {len(submitted)} tasks "
          f"({', '.join(f'{index}: {run.name}' for index, run in submitted)}); script {state.folder / slurm.SCRIPT}; "
          f"where each stands: seg batch --status {args.name}", flush=True)
    return 0


def run_here(runs: list[Run], state: BatchState, args: argparse.Namespace, slots: list[dict[str, str]]) -> int:
    """Run the batch on this machine (serially, or in `slots` at once), then its summary and reports; the exit
    status."""
    with SignalRelay() as relay:
        if args.launcher == "local":
            run_in_parallel(runs, state, args.epochs, relay, slots)
        else:
            run_serially(runs, state, args.epochs, relay)
    table = summary(runs)
    print(f"\nbatch {args.name} summary\n{table}", flush=True)
    write_text_atomically(state.folder / "summary.md", table + "\n")
    if args.folds and not relay.received:  # the CV table of the folds trained so far (each scored once)
        subprocess.run([*seg_command(), "report", "--cv", str(state.folder)], check=False)
    if args.report:
        done = [str(r.run_dir) for r in runs if r.run_dir is not None]
        subprocess.run([*seg_command(), "report", *done, "--out", args.report], check=False)
    if relay.received or any(run.status.startswith("preempted") for run in runs):
        print(f"batch {args.name} preempted: run the same command again to continue it", flush=True)
        return PREEMPTED_EXIT
    return 0 if all(run.status.startswith("ok") for run in runs) else 1


def main(argv: list[str]) -> int:
    """`seg batch ...`: plan, run each (or submit them), summarise; exit 1 if any run failed, 75 if preempted."""
    args = parse(argv, __doc__.split("\n\n")[0])
    if args.status:
        print(status_report(args.status, args.max_requeues), flush=True)
        return 0
    if args.launcher == "slurm":
        slurm.refuse_what_slurm_cannot_run(args)
    if args.launcher == "local" and args.parallel is None:
        args.parallel = default_parallel(args.gpus)
    slots = slot_environments(args.parallel, args.gpus) if args.launcher == "local" else []
    runs = plan_runs(args)
    state = BatchState(batch_folder(args.name))
    decide(runs, state, args.epochs, args.fresh, args.max_requeues)
    if not args.no_estimate:
        measure_estimates(runs)
    print_plan(runs, args)
    if args.launcher == "slurm":
        return submit_to_slurm(runs, state, args)
    return run_here(runs, state, args, slots)
