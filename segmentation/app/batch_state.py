"""A batch's `state.json`: per run its directory, status, epochs, how often it was preempted or failed, and (under
SLURM) its array task; and the decision each run of a new batch command takes from it.

Several processes write it at once (the runs of `--launcher local`, the tasks of a SLURM array): every write
holds a file lock, reads the file again and replaces only its own run's entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..core.locking import exclusive
from ..core.log import log
from ..core.storage import write_text_atomically
from .batch_plan import Run
from .run_history import read_run

STATE_FILE = "state.json"


def batch_folder(name: str) -> Path:
    """Where a batch's state, logs, summary and array script live."""
    return Path("lightning_logs") / "batches" / name


class BatchState:
    """`state.json` of a batch folder: run name -> what is known of that run (written atomically, under a lock)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / STATE_FILE
        self.runs: dict[str, dict] = self.read()

    def read(self) -> dict[str, dict]:
        """The file's runs now ({} for none; a file that is not seg's JSON is said and read as none)."""
        try:
            runs = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            log.info(f"{self.path} does not read as JSON; the batch starts anew")
            return {}
        return runs if isinstance(runs, dict) else {}

    def update(self, name: str, **fields: Any) -> dict:
        """Merge `fields` into run `name`'s entry, keeping every other run's entry as the file has it now."""
        with exclusive(self.path.with_suffix(".lock"), "batch state"):
            self.runs = self.read()
            entry = {**self.runs.get(name, {}), **fields}
            self.runs[name] = entry
            self.folder.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.path, json.dumps(self.runs, indent=1))
        return entry

    def record(self, run: Run, epochs: int, **fields: Any) -> dict:
        """Save what is known of `run` now (its directory, status, epochs and planned arguments)."""
        return self.update(run.name, run_dir=str(run.run_dir) if run.run_dir else None, status=run.status,
                           epochs=epochs, architecture=run.architecture, scheduler=run.scheduler, fold=run.fold,
                           seed=run.seed, fit_args=run.fit_args, **fields)


def decide(runs: list[Run], state: BatchState, epochs: int, fresh: bool, max_requeues: int) -> None:
    """Set each run's action from the batch's state: skip it (finished at these epochs, or failed at the same epoch
    more than `max_requeues` times), continue it (a run directory with a checkpoint to go on from) or start it."""
    for run in runs:
        saved = {} if fresh else state.runs.get(run.name) or switched_schedule(run, state, epochs)
        run_dir = Path(saved["run_dir"]) if saved.get("run_dir") else None
        if gave_up(saved, max_requeues):
            run.action, run.status, run.run_dir = "skip", saved["status"], run_dir
            run.notes.append(f"{saved['status']}: not run again (--fresh starts it anew)")
            continue
        if run_dir is None or not has_checkpoint(run_dir):
            continue  # never started, or stopped before its first checkpoint: start it
        run.run_dir = run_dir
        if saved.get("status") == "ok" and int(saved.get("epochs", 0)) >= epochs:
            run.action, run.status = "skip", "ok (finished before)"
            run.notes.append(f"finished before ({run_dir}): skipped")
            run.best = best_dice(run_dir)
        else:
            run.action = "continue"
            run.notes.append(f"continues {run_dir} ({saved.get('status', '?')}, to {epochs} epochs)")


def has_checkpoint(run_dir: Optional[Path]) -> bool:
    """Whether a run directory has a checkpoint to continue from (`last.ckpt` of a preemption included)."""
    return run_dir is not None and any((run_dir / "checkpoints").glob("*.ckpt"))


def gave_up(saved: dict, max_requeues: int) -> bool:
    """Whether a run failed more than `max_requeues` times in a row at the same epoch (a fault that another try does
    not fix)."""
    same = (saved.get("failed_at_epochs") or [])[-(max_requeues + 1):]
    return len(same) == max_requeues + 1 and len(set(same)) == 1


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


def run_from(saved: dict) -> Run:
    """The `Run` that a state entry records (its arguments, directory, status and time)."""
    return Run(str(saved.get("architecture")), str(saved.get("scheduler")), list(saved.get("fit_args") or []),
               status=str(saved.get("status")), seconds=float(saved.get("seconds", 0.0)), fold=saved.get("fold"),
               seed=saved.get("seed"), run_dir=Path(saved["run_dir"]) if saved.get("run_dir") else None)


def best_dice(run_dir: Path) -> Optional[tuple[float, int]]:
    """The best val/dice of a run and its epoch, from its TensorBoard events."""
    series = read_run(run_dir)
    return series.best_dice() if series is not None else None
