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
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from ...core.constants import PREEMPTED_EXIT
from ...core.errors import SegError
from ...core.formatting import format_duration
from ...core.handoff import RUN_RECORD_VARIABLE, read_run_record
from ...core.storage import write_text_atomically
from ...measure.estimate import Estimate
from ...schedules.plans import SCHEDULES
from ..batch_plan import Run, plan_runs
from ..command_parser import CommandParser
from ..run_history import read_run
from ..seed_groups import refuse_bad_seeds
from ..signal_relay import SignalRelay
from .estimate import estimate_in_child, seg_command


def parse(argv: list[str]) -> argparse.Namespace:
    """The batch's command-line options."""
    parser = CommandParser(prog="seg batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="config file(s), composed in order")
    parser.add_argument("--archs", nargs="+", default=["unet", "segresnet"],
                        help="architectures (default unet segresnet)")
    parser.add_argument("--schedulers", nargs="+", default=["reduce_on_plateau"],
                        help="schedules, each run with every arch")
    parser.add_argument("--epochs", type=int, default=50, help="max_epochs of every run (default 50)")
    parser.add_argument("--data", help="data.root (default: the config's)")
    parser.add_argument("--gpus", type=int, default=1, help="devices per run; > 1 uses DDP")
    parser.add_argument("--name", default="batch",
                        help="name of the batch (its logs go to lightning_logs/batches/NAME)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny networks (each architecture's smoke size), for trying the pipeline; "
                        "compose with --config configs/fragments/smoke.yaml for tiny patches and 2 epochs")
    parser.add_argument("--folds", type=int, help="K-fold cross-validation: one run per fold (--data.fold K "
                        "--data.num_folds N, test cases carved first), then the CV table (seg report --cv)")
    parser.add_argument("--seeds", type=int, nargs="+", help="every run once per seed S (--seed_everything S "
                        "--data.sampling_seed S: initial weights, shuffle, patches, augmentation; the split stays "
                        "data.seed's), named <run>_seed<S>; seg report gives mean ± sd over the seeds")
    parser.add_argument("--report", help="afterwards, write `seg report` of the runs into this folder")
    parser.add_argument("--no-estimate", action="store_true", help="skip the measured estimate in the plan")
    parser.add_argument("--fresh", action="store_true",
                        help="start every run anew (default: continue the batch's unfinished runs, skip finished ones)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `seg fit` arguments for every run")
    args = parser.parse_args(argv)
    refuse_what_no_run_can_use(args)
    return args


def refuse_what_no_run_can_use(args: argparse.Namespace) -> None:
    """SegError before any run starts for options every run would fail on (each run would exit 2 with the reason
    in its log, and the batch 1)."""
    if args.epochs < 1:
        raise SegError(f"--epochs {args.epochs}: every run trains 1 or more epochs")
    if args.gpus < 1:
        raise SegError(f"--gpus {args.gpus}: every run needs 1 or more devices")
    if args.folds is not None and args.folds < 2:
        raise SegError(f"--folds {args.folds}: cross-validation needs 2 or more folds (or leave --folds out)")
    refuse_bad_seeds(args.seeds)
    if unknown := [s for s in args.schedulers if s not in SCHEDULES]:
        raise SegError(f"--schedulers {' '.join(unknown)}: unknown; one of {', '.join(SCHEDULES)}")
    from ...model.networks import ARCHITECTURES

    if unknown := [a for a in args.archs if a not in ARCHITECTURES]:
        raise SegError(f"--archs {' '.join(unknown)}: unknown; one of {', '.join(ARCHITECTURES)}")
    if missing := [c for c in args.config if not Path(c).is_file()]:
        raise SegError(f"--config {' '.join(missing)}: no such file")
    if Path(args.name).name != args.name or args.name in ("", ".", ".."):
        raise SegError(f"--name {args.name!r}: a batch name is one folder name under lightning_logs/batches/ "
                       f"(no '/' or '..')")


def print_plan(runs: list[Run], args: argparse.Namespace) -> None:
    """Each run with its estimate and notes (continues, switches, skipped), and the measured total."""
    print(f"batch {args.name}: {len(runs)} runs x {args.epochs} epochs ({' + '.join(args.config)})", flush=True)
    for run in runs:
        estimate = run.estimate.short() if run.estimate is not None else "n/a"
        print(f"  {run.name:<32} estimate {estimate}  {'; '.join(run.notes)}", flush=True)
    known = [r.estimate.projected_seconds for r in runs if r.estimate is not None]
    if known:
        print(f"  total (measured on this machine): {format_duration(sum(known))}; each estimate is its whole "
              f"`seg fit` process: start-up, data, every epoch's steps, validation and checkpoints, exit", flush=True)


class BatchState:
    """`state.json` of a batch: per run name its run directory, status and epochs (written atomically)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.runs: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            print(f"seg batch: {path} does not read as JSON; the batch starts anew", flush=True)
            self.runs = {}

    def record(self, run: Run, epochs: int) -> None:
        """Save what is known of `run` now."""
        self.runs[run.name] = {"run_dir": str(run.run_dir) if run.run_dir else None, "status": run.status,
                               "epochs": epochs, "architecture": run.architecture, "scheduler": run.scheduler,
                               "fold": run.fold, "seed": run.seed}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.path, json.dumps(self.runs, indent=1))


def decide(runs: list[Run], state: BatchState, epochs: int, fresh: bool) -> None:
    """Set each run's action from the batch's state: skip it (finished at these epochs), continue it (a run
    directory with a checkpoint to go on from) or start it."""
    for run in runs:
        saved = {} if fresh else state.runs.get(run.name) or switched_schedule(run, state, epochs)
        run_dir = Path(saved["run_dir"]) if saved.get("run_dir") else None
        if run_dir is None or not any((run_dir / "checkpoints").glob("*.ckpt")):
            continue  # never started, or stopped before its first checkpoint: start it
        run.run_dir = run_dir
        if saved.get("status") == "ok" and int(saved.get("epochs", 0)) >= epochs:
            run.action, run.status = "skip", "ok (finished before)"
            run.notes.append(f"finished before ({run_dir}): skipped")
            run.best = best_dice(run_dir)
        else:
            run.action = "continue"
            run.notes.append(f"continues {run_dir} ({saved.get('status', '?')}, to {epochs} epochs)")


def switched_schedule(run: Run, state: BatchState, epochs: int) -> dict:
    """The finished run of `run`'s architecture under another schedule, when the batch now asks for more epochs
    than it trained (the seed's 50 epochs `none` -> 100 `reduce_on_plateau`): continued with the new schedule, as
    `seg fit --model.scheduler` would. At the same epochs another schedule is a comparison: a run of its own."""
    earlier = [saved for saved in state.runs.values() if saved.get("architecture") == run.architecture
               and saved.get("fold") == run.fold and saved.get("seed") == run.seed
               and saved.get("scheduler") != run.scheduler
               and saved.get("status") == "ok"
               and int(saved.get("epochs", 0)) < epochs]
    if len(earlier) != 1:
        return {}
    run.notes.append(f"switches its schedule {earlier[0]['scheduler']} -> {run.scheduler}")
    return {**earlier[0], "status": f"finished {earlier[0]['epochs']} epochs with {earlier[0]['scheduler']}"}


def execute(run: Run, log_folder: Path, state: BatchState, epochs: int, relay: SignalRelay) -> None:
    """Run `seg fit` for `run`, teeing its output to `<log_folder>/<run>.log`; record its run directory as soon as
    the fit names it; fill in status, time, results."""
    log_folder.mkdir(parents=True, exist_ok=True)
    log_path = log_folder / f"{run.name}.log"
    record_path = log_folder / f"{run.name}.run.json"  # the fit's run record (core.handoff)
    record_path.unlink(missing_ok=True)
    started = time.monotonic()
    with open(log_path, "a") as log:
        resume = [f"--ckpt_path={run.run_dir}"] if run.action == "continue" else []  # its newest good checkpoint
        process = relay.process = subprocess.Popen([*seg_command(), "fit", *run.fit_args, *resume],
                                                   env={**os.environ, RUN_RECORD_VARIABLE: str(record_path)},
                                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                                   start_new_session=True)  # (signals reach it once: relayed)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            sys.stdout.write(line)
            if run.status != "running":
                take_run_record(run, record_path, state, epochs)
        code = process.wait()
        take_run_record(run, record_path, state, epochs)
        relay.process = None
    run.seconds = time.monotonic() - started
    run.status = ("ok" if code == 0 else "preempted (exit 75: the batch continues it when run again)"
                  if code == PREEMPTED_EXIT else f"failed (exit {code}, log {log_path})")
    state.record(run, epochs)
    if run.run_dir is not None:
        run.best = best_dice(run.run_dir)


def take_run_record(run: Run, record_path: Path, state: BatchState, epochs: int) -> None:
    """Once the fit has written its run record: take its run directory, mark the run running and save the state."""
    record = read_run_record(record_path)
    if record is not None and run.status != "running":
        run.run_dir, run.status = Path(record["run_dir"]), "running"
        state.record(run, epochs)


def best_dice(run_dir: Path) -> Optional[tuple[float, int]]:
    """The best val/dice of a run and its epoch, from its TensorBoard events."""
    series = read_run(run_dir)
    return series.best_dice() if series is not None else None


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


def main(argv: list[str]) -> int:
    """`seg batch ...`: plan, run each, summarise; exit 1 if any run failed."""
    args = parse(argv)
    runs = plan_runs(args)
    log_folder = Path("lightning_logs") / "batches" / args.name
    state = BatchState(log_folder / "state.json")
    decide(runs, state, args.epochs, args.fresh)
    if not args.no_estimate:
        for run in runs:
            if run.action != "skip":  # (a continued run's estimate is that of the whole run)
                estimate = estimate_in_child(run.fit_args)
                if isinstance(estimate, Estimate):
                    run.estimate = estimate
                else:
                    run.notes.append(f"estimate failed: {estimate}"[:200])
    print_plan(runs, args)
    with SignalRelay() as relay:
        for run in runs:
            if run.action == "skip" or relay.received:
                continue
            print(f"\n=== {run.name} ({run.action}) ===", flush=True)
            execute(run, log_folder, state, args.epochs, relay)
            if run.status.startswith("preempted"):
                break  # the machine is being taken away: the rest waits for the batch to be run again
    table = summary(runs)
    print(f"\nbatch {args.name} summary\n{table}", flush=True)
    write_text_atomically(log_folder / "summary.md", table + "\n")
    if args.folds and not relay.received:  # the CV table of the folds trained so far (each scored once)
        subprocess.run([*seg_command(), "report", "--cv", str(log_folder)], check=False)
    if args.report:
        done = [str(r.run_dir) for r in runs if r.run_dir is not None]
        subprocess.run([*seg_command(), "report", *done, "--out", args.report], check=False)
    if relay.received or any(run.status.startswith("preempted") for run in runs):
        print(f"batch {args.name} preempted: run the same command again to continue it", flush=True)
        return PREEMPTED_EXIT
    return 0 if all(run.status.startswith("ok") for run in runs) else 1
