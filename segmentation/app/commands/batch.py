"""Batches: several `seg fit` runs in a row (architectures x schedules), planned, isolated, summarised.

`seg batch --config configs/brats.yaml --archs unet segresnet --epochs 50` prints a
plan first (each run's measured `seg estimate`), then runs each as its own `seg fit`
process (a failed run does not stop the others; its log is kept), and ends with a
summary: run, status, best val/dice and its epoch, wall time, best checkpoint.
`make batch1|batch2|batch3` call it for BraTS, MSD liver and TotalSegmentator.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ...core.formatting import format_duration
from .report import read_run


@dataclass
class Run:
    """One planned run of a batch and, once run, what came of it."""

    architecture: str
    scheduler: str
    fit_args: list[str]
    estimate_seconds: Optional[float] = None
    status: str = "planned"
    seconds: float = 0.0
    run_dir: Optional[Path] = None
    best: Optional[tuple[float, int]] = None  # (val/dice, epoch)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.architecture}_{self.scheduler}"


def seg_command() -> list[str]:
    """How to start `seg` as a child process with this same Python."""
    return [sys.executable, "-m", "segmentation"]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="seg batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="config file(s), composed in order")
    parser.add_argument("--archs", nargs="+", default=["unet", "segresnet"], help="architectures (default unet segresnet)")
    parser.add_argument("--schedulers", nargs="+", default=["reduce_on_plateau"], help="schedules, each run with every arch")
    parser.add_argument("--epochs", type=int, default=50, help="max_epochs of every run (default 50)")
    parser.add_argument("--data", help="data.root (default: the config's)")
    parser.add_argument("--gpus", type=int, default=1, help="devices per run; > 1 uses DDP")
    parser.add_argument("--name", default="batch", help="name of the batch (its logs go to lightning_logs/batches/NAME)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny networks (each architecture's smoke size), for trying the pipeline; "
                        "compose with --config configs/fragments/smoke.yaml for tiny patches and 2 epochs")
    parser.add_argument("--report", help="afterwards, write `seg report` of the runs into this folder")
    parser.add_argument("--no-estimate", action="store_true", help="skip the measured estimate in the plan")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more `seg fit` arguments for every run")
    return parser.parse_args(argv)


def plan_runs(args: argparse.Namespace) -> list[Run]:
    """The runs of the batch with their full `seg fit` arguments."""
    runs = []
    for scheduler in args.schedulers:
        for architecture in args.archs:
            fit = [f"--config={c}" for c in args.config]
            if args.smoke:
                fit.append(f"--model.network_kwargs={json.dumps(smoke_network(architecture))}")
            fit += [f"--model.architecture={architecture}", f"--model.scheduler={scheduler}",
                    f"--trainer.max_epochs={args.epochs}", f"--trainer.devices={args.gpus}"]
            if args.gpus > 1:
                fit.append("--trainer.strategy=ddp")
            if args.data:
                fit.append(f"--data.root={args.data}")
            fit += [a for a in args.extra if a != "--"]
            runs.append(Run(architecture, scheduler, fit))
    return runs


def smoke_network(architecture: str) -> dict:
    """The tiny `--model.network_kwargs` of `architecture` (empty for a name seg does not know: the run says so)."""
    from ...model.networks import ARCHITECTURES

    known = ARCHITECTURES.get(architecture)
    return dict(known.smoke_kwargs) if known else {}


def measured_estimate(run: Run) -> Optional[float]:
    """Projected seconds of `run`, measured by `seg estimate` in a child process (so that this process holds no
    accelerator memory while the runs train); None, with the reason in the run's notes, if that failed."""
    measured = subprocess.run([*seg_command(), "estimate", *run.fit_args, "--json"], capture_output=True, text=True)
    figures = [line for line in measured.stdout.splitlines() if line.startswith("{")]
    if measured.returncode == 0 and figures:
        return float(json.loads(figures[-1])["projected_seconds"])
    lines = [line for line in measured.stderr.splitlines() if line.strip()]
    reason = next((line for line in lines if line.startswith("seg: error:")), lines[-1] if lines else "")
    run.notes.append(f"estimate failed: {reason.removeprefix('seg: error: ') or f'exit {measured.returncode}'}"[:200])
    return None


def print_plan(runs: list[Run], args: argparse.Namespace) -> None:
    print(f"batch {args.name}: {len(runs)} runs x {args.epochs} epochs ({' + '.join(args.config)})", flush=True)
    for run in runs:
        estimate = format_duration(run.estimate_seconds) if run.estimate_seconds is not None else "n/a"
        print(f"  {run.name:<32} estimate {estimate}  {'; '.join(run.notes)}", flush=True)
    known = [r.estimate_seconds for r in runs if r.estimate_seconds is not None]
    if known:
        print(f"  total (measured on this machine): {format_duration(sum(known))}", flush=True)


def execute(run: Run, log_folder: Path) -> None:
    """Run `seg fit` for `run`, teeing its output to `<log_folder>/<run>.log`; fill in status, time, results."""
    log_folder.mkdir(parents=True, exist_ok=True)
    log_path = log_folder / f"{run.name}.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen([*seg_command(), "fit", *run.fit_args], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            log.write(line)
            sys.stdout.write(line)
            match = re.match(r"\s+run: (.+)$", line)
            if match:
                run.run_dir = Path(match.group(1).strip())
        code = process.wait()
    run.seconds = time.monotonic() - started
    run.status = "ok" if code == 0 else f"failed (exit {code}, log {log_path})"
    if run.run_dir is not None:
        run.best = best_dice(run.run_dir)


def best_dice(run_dir: Path) -> Optional[tuple[float, int]]:
    """The best val/dice of a run and its epoch, from its TensorBoard events."""
    series = read_run(run_dir)
    return series.best_dice() if series is not None else None


def summary(runs: list[Run]) -> str:
    """The closing table of the batch."""
    lines = ["| run | status | best val/dice | epoch | time | best checkpoint |", "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        dice, epoch = (f"{run.best[0]:.4f}", str(run.best[1])) if run.best else ("—", "—")
        checkpoint = run.run_dir / "checkpoints" / "best.ckpt" if run.run_dir else "—"
        lines.append(f"| {run.name} | {run.status} | {dice} | {epoch} | {format_duration(run.seconds)} | {checkpoint} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`seg batch ...`: plan, run each, summarise; exit 1 if any run failed."""
    args = parse(argv)
    runs = plan_runs(args)
    if not args.no_estimate:
        for run in runs:
            run.estimate_seconds = measured_estimate(run)
    print_plan(runs, args)
    log_folder = Path("lightning_logs") / "batches" / args.name
    for run in runs:
        print(f"\n=== {run.name} ===", flush=True)
        execute(run, log_folder)
    table = summary(runs)
    print(f"\nbatch {args.name} summary\n{table}", flush=True)
    (log_folder / "summary.md").write_text(table + "\n")
    if args.report:
        done = [str(r.run_dir) for r in runs if r.run_dir is not None]
        subprocess.run([*seg_command(), "report", *done, "--out", args.report], check=False)
    return 0 if all(run.status == "ok" for run in runs) else 1
