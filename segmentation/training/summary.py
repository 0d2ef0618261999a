"""The closing paragraph of a fit: run directory, best and last val/dice, epochs, wall time."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.constants import MONITOR
from ..core.handoff import write_run_record
from ..core.log import log


class RunSummary(Callback):
    """Prints one closing paragraph of a fit: run directory, best and last val/dice, epochs, wall time."""

    @override
    def on_fit_start(self, trainer, pl_module) -> None:
        """Start the wall clock; say which run directory this fit trains into (and write
        the run record a parent `seg batch` asked for: `core.handoff`)."""
        self._started = time.monotonic()
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if trainer.is_global_zero and log_dir:
            log.info(f"seg: training into {log_dir}")
            write_run_record(log_dir, "running")

    @override
    def on_fit_end(self, trainer, pl_module) -> None:
        """Print the summary (rank 0 only)."""
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if not trainer.is_global_zero:
            return
        if log_dir:
            write_run_record(log_dir, "finished")
        best = next((c for c in trainer.checkpoint_callbacks if c.monitor == MONITOR), None)  # (not the epoch keeper)
        last = trainer.callback_metrics.get(MONITOR)
        lines = [
            f"run: {log_dir}",
            f"epochs: {trainer.current_epoch} (max_epochs {trainer.max_epochs}), "
            f"wall time {time.monotonic() - self._started:.1f} s",
        ]
        if last is not None:
            lines.append(f"last {MONITOR}: {float(last):.4f}")
        if best is not None and best.best_model_score is not None:
            lines.append(f"best {MONITOR}: {float(best.best_model_score):.4f} ({best.best_model_path})")
        log.info("\n".join(["", "seg run summary", *("  " + line for line in lines)]))
