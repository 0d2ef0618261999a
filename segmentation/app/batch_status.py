"""`seg batch --status NAME`: where every run of a batch stands, from its `state.json`, its run directories and,
where the batch is a SLURM array, `squeue`; the batch's summary table once every run has ended."""

from __future__ import annotations

import os
from pathlib import Path
from statistics import median
from typing import Optional

from ..core.errors import SegError
from ..core.formatting import format_duration
from ..core.handoff import read_run_record
from ..core.storage import write_text_atomically
from .batch_run import PREEMPTED_STATUS, summary, trained_epochs
from .batch_state import BatchState, batch_folder, gave_up, run_from
from .launchers.slurm import queued_jobs
from .run_history import RunCurves, read_run

ENDED = ("finished", "failed", "gave up", "stopped")


def status_report(name: str, max_requeues: int) -> str:
    """The status table of batch `name` (and its summary table when every run has ended)."""
    folder = batch_folder(name)
    state = BatchState(folder)
    if not state.runs:
        raise SegError(f"--status {name}: no batch there ({state.path} is missing or records no run); the batches "
                       f"here: {', '.join(p.name for p in folder.parent.glob('*') if p.is_dir()) or 'none'}")
    queue = queued_jobs([str(saved.get("slurm_job", "")) for saved in state.runs.values()])
    lines = ["| run | stands | epoch | ETA | preempted | best val/dice (epoch) | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    runs, stands = [], []
    for run_name, saved in state.runs.items():
        run = run_from(saved)
        stand, note = where_it_stands(run_name, saved, queue, folder, max_requeues)
        curves = read_run(run.run_dir) if run.run_dir is not None else None  # (its events, read once)
        run.best = curves.best_dice() if curves is not None else None
        eta = time_left(curves, int(saved.get("epochs", 0)) - trained_epochs(run.run_dir)) if stand == "running" \
            else None
        lines.append(f"| {run_name} | {stand} | {trained_epochs(run.run_dir)} of {saved.get('epochs', '?')} "
                     f"| {format_duration(eta) if eta is not None else '—'} | {saved.get('preemptions', 0)} "
                     f"| {f'{run.best[0]:.4f} ({run.best[1]})' if run.best else '—'} | {note} |")
        runs.append(run)
        stands.append(stand)
    report = f"batch {name}: {len(state.runs)} runs ({state.path})\n" + "\n".join(lines)
    if all(stand.startswith(ENDED) for stand in stands):
        table = summary(runs)
        write_text_atomically(folder / "summary.md", table + "\n")
        report += f"\n\nevery run has ended: summary ({folder / 'summary.md'})\n{table}"
    return report


def where_it_stands(name: str, saved: dict, queue: dict[str, str], folder: Path, max_requeues: int
                    ) -> tuple[str, str]:
    """(pending / running / preempted / finished / failed / gave up / stopped, a note) of one run (`max_requeues`: the
    cap the run was submitted with, where state.json has it, else the one given)."""
    max_requeues = int(saved.get("max_requeues", max_requeues))
    status, job = str(saved.get("status", "")), str(saved.get("slurm_job", ""))
    in_queue = queue.get(job, "")
    where = f"SLURM {job} {in_queue.lower()}".strip() if job else ""
    if status == "ok":
        return "finished", ""
    if gave_up(saved, max_requeues):
        return "gave up", f"failed {len(saved['failed_at_epochs'])} times at epoch {saved['failed_at_epochs'][-1]}: " \
                          f"not run again (--fresh starts it anew); {last_error(folder / f'{name}.log')}"
    if status.startswith("failed"):
        return "failed", last_error(folder / f"{name}.log")
    if status.startswith("preempted") and status != PREEMPTED_STATUS:
        return "stopped", status  # past --max-requeues
    if status.startswith("preempted"):
        return ("requeued" if in_queue else "preempted"), where or "the batch command again continues it"
    if status == "running" and (in_queue == "RUNNING" or (not job and process_alive(folder / f"{name}.run.json"))):
        return "running", where
    if status == "pending" and in_queue:
        return "pending", where
    return "stopped", f"{status or 'not started'}; no process or task runs it now (the batch command again " \
                      f"continues it)"


def process_alive(record_path: Path) -> bool:
    """Whether the `seg fit` that wrote this run record still runs (on this machine)."""
    record = read_run_record(record_path)
    if record is None:
        return False
    try:
        os.kill(int(record["pid"]), 0)  # signal 0: only asks whether the process exists
    except (OSError, ValueError, KeyError):
        return False
    return True


def time_left(curves: Optional[RunCurves], epochs_left: int) -> Optional[float]:
    """Seconds to the run's last epoch at its median epoch time so far (None before its first epoch; the median: an
    epoch that spans a preemption is not a typical one)."""
    if curves is None or not curves.epoch_seconds:
        return None
    return median(curves.epoch_seconds.values()) * max(0, epochs_left)


def last_error(log_path: Path) -> str:
    """The last line of a run's log that reads as an error (else its last line)."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no log ({log_path})"
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["(empty log)"])[-1][:200]
