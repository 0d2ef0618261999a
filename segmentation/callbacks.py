"""Callbacks `seg` adds by default: the learning rate once per epoch (tag `lr`) and a closing run summary."""

from __future__ import annotations

import time
from typing import Optional

from lightning.pytorch.callbacks import Callback, LearningRateMonitor

from .checkpointing import MONITOR


def with_default_logging(callbacks: list[Callback]) -> list[Callback]:
    """`callbacks` plus an epoch-wise LearningRateMonitor (unless the user configured one) and the summary."""
    callbacks = [*callbacks, RunSummary()]
    if any(isinstance(callback, LearningRateMonitor) for callback in callbacks):
        return callbacks
    return [*callbacks, LearningRateMonitor(logging_interval="epoch")]


class RunSummary(Callback):
    """Prints one closing paragraph of a fit: run directory, best and last val/dice, epochs, wall time."""

    def on_fit_start(self, trainer, pl_module) -> None:
        """Start the wall clock."""
        self._started = time.monotonic()

    def on_fit_end(self, trainer, pl_module) -> None:
        """Print the summary (rank 0 only)."""
        if not trainer.is_global_zero:
            return
        best = next((c for c in trainer.checkpoint_callbacks if c.monitor), None)
        last = trainer.callback_metrics.get(MONITOR)
        lines = [
            f"run: {trainer.log_dir}",
            f"epochs: {trainer.current_epoch} (max_epochs {trainer.max_epochs}), "
            f"wall time {time.monotonic() - self._started:.1f} s",
        ]
        if last is not None:
            lines.append(f"last {MONITOR}: {float(last):.4f}")
        if best is not None and best.best_model_score is not None:
            lines.append(f"best {MONITOR}: {float(best.best_model_score):.4f} ({best.best_model_path})")
        print("\n".join(["", "seg run summary", *("  " + line for line in lines)]), flush=True)


def optional_callbacks(early_stopping_patience: Optional[int], preview_every_n_epochs: int) -> list[Callback]:
    """The callbacks that `--early_stopping_patience` and `--preview_every_n_epochs` turn on."""
    return []
