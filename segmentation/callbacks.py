"""Callbacks `seg` adds to a fit.

By default (`with_default_logging`): the learning rate once per epoch (tag `lr`),
each epoch's wall time (tag `time/epoch_seconds`) with the whole run's ETA (in the
progress bar, or one printed line per epoch when the bar is off), and a closing
run summary. On request (`optional_callbacks`): early stopping on `val/dice` and
image previews (`previews.py`).
"""

from __future__ import annotations

import math
import time
from typing import Optional

from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

from .checkpointing import MONITOR
from .errors import SegError
from .previews import ValidationPreviews

EPOCH_SECONDS_TAG = "time/epoch_seconds"


def with_default_logging(callbacks: list[Callback]) -> list[Callback]:
    """`callbacks` plus the epoch timer, the summary and an epoch-wise LearningRateMonitor (unless configured).

    The timer swaps Lightning's default progress bar for `EtaProgressBar`, unless the
    user configured a progress bar of their own.
    """
    user_bar = any(isinstance(callback, ProgressBar) for callback in callbacks)
    timer = [] if any(isinstance(c, EpochTimer) for c in callbacks) else [EpochTimer(replace_progress_bar=not user_bar)]
    callbacks = [*callbacks, *timer, RunSummary()]
    if any(isinstance(callback, LearningRateMonitor) for callback in callbacks):
        return callbacks
    return [*callbacks, LearningRateMonitor(logging_interval="epoch")]


def format_duration(seconds: float) -> str:
    """`3.2s` (under 10 s), `42s`, `9m 55s`, `3h 07m`."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def remaining_epochs(trainer, done: int) -> Optional[int]:
    """Epochs left after `done` finished ones: by max_epochs, or fewer when max_steps ends the run first."""
    left = max(trainer.max_epochs - done, 0) if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
    batches = trainer.num_training_batches
    if trainer.max_steps is not None and trainer.max_steps >= 0 and math.isfinite(batches) and batches > 0:
        steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        by_steps = max(math.ceil((trainer.max_steps - trainer.global_step) / steps_per_epoch), 0)
        left = by_steps if left is None else min(left, by_steps)
    return left


def epoch_of(trainer, epoch: int, done: int) -> str:
    """`3/50`: the 1-based `epoch` and the epoch the run ends at, seen after `done` epochs (`3` if unbounded)."""
    left = remaining_epochs(trainer, done)
    return f"{epoch}/{done + left}" if left is not None else str(epoch)


class EpochTimer(Callback):
    """Each training epoch's wall time (its validation included), logged as `time/epoch_seconds`, and the ETA.

    Seconds per epoch is the mean of this process's epochs (a resumed run counts
    its own); time left is the remaining epochs times that mean. Without a progress
    bar, rank 0 prints one line per epoch, e.g.
    `epoch 3/50 · 12.4 s/epoch · 9m 55s left · val/dice 0.7100` (val/dice only
    on epochs that validated). With Lightning's default progress bar, the bar is
    replaced by `EtaProgressBar`, which shows `Epoch 3/50` and the ETA.
    """

    def __init__(self, replace_progress_bar: bool = True):
        self.replace_progress_bar = replace_progress_bar
        self.seconds: list[float] = []
        self.last_line: Optional[str] = None
        self.time_left: Optional[float] = None
        self._started = 0.0
        self._validated = False

    def setup(self, trainer, pl_module, stage: str) -> None:
        """For a fit, swap Lightning's default TQDM bar for the ETA bar (same settings)."""
        bar = trainer.progress_bar_callback
        if stage != "fit" or not self.replace_progress_bar or type(bar) is not TQDMProgressBar:
            return
        eta_bar = EtaProgressBar(self, refresh_rate=bar.refresh_rate, process_position=bar.process_position,
                                 leave=getattr(bar, "_leave", False))
        index = trainer.callbacks.index(bar)
        trainer.callbacks[index] = eta_bar
        if index < trainer.callbacks.index(self):  # its own setup hook has been called already
            eta_bar.setup(trainer, pl_module, stage)

    def on_train_start(self, trainer, pl_module) -> None:
        """Count this process's epochs only."""
        self.seconds, self.last_line, self.time_left = [], None, None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Start the epoch's clock."""
        self._started = time.monotonic()
        self._validated = False

    def on_validation_end(self, trainer, pl_module) -> None:
        """Remember that this epoch validated (its val/dice is fresh)."""
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Log the epoch's seconds (Lightning has run its validation by now) and show the ETA."""
        seconds = time.monotonic() - self._started
        self.seconds.append(seconds)
        pl_module.log(EPOCH_SECONDS_TAG, seconds, on_step=False, on_epoch=True, rank_zero_only=True)
        mean = sum(self.seconds) / len(self.seconds)
        done = trainer.current_epoch + 1
        left = remaining_epochs(trainer, done)
        stopping = trainer.should_stop and done >= (trainer.min_epochs or 0)  # e.g. early stopping, at validation
        self.time_left = 0.0 if stopping else None if left is None else left * mean
        parts = [f"epoch {epoch_of(trainer, done, done)}", f"{mean:.1f} s/epoch"]
        if stopping:
            parts.append("stopping")
        elif self.time_left is not None:
            parts.append(f"{format_duration(self.time_left)} left")
        dice = trainer.callback_metrics.get(MONITOR)
        if self._validated and dice is not None:
            parts.append(f"{MONITOR} {float(dice):.4f}")
        self.last_line = " · ".join(parts)
        if trainer.progress_bar_callback is None and trainer.is_global_zero:
            print(self.last_line, flush=True)


class EtaProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar with `Epoch i/N` (1-based) and the whole run's ETA from an `EpochTimer`."""

    def __init__(self, timer: EpochTimer, **kwargs):
        super().__init__(**kwargs)
        self.timer = timer

    def on_train_epoch_start(self, trainer, *args) -> None:
        """Describe the epoch as `Epoch i/N`."""
        super().on_train_epoch_start(trainer, *args)
        epoch = trainer.current_epoch
        self.train_progress_bar.set_description(f"Epoch {epoch_of(trainer, epoch + 1, epoch)}")

    def get_metrics(self, trainer, pl_module) -> dict:
        """The usual metrics plus `eta` (time left, seconds per epoch) once an epoch has finished."""
        items = super().get_metrics(trainer, pl_module)
        if self.timer.time_left is not None and self.timer.seconds:
            mean = sum(self.timer.seconds) / len(self.timer.seconds)
            items["eta"] = f"{format_duration(self.timer.time_left)} ({mean:.1f} s/epoch)"
        return items


class SegEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping on `val/dice` (mode max), resumable.

    Its state (validations without improvement, best score) is saved in every
    checkpoint and restored by `--ckpt_path`, so a resumed run continues counting.
    Differences from Lightning's defaults: the check runs at the end of every
    validation (patience counts validations, also with `check_val_every_n_epoch`
    > 1, and never re-reads a stale Dice); on resume the configured patience wins
    (Lightning would restore the checkpoint's); a NaN Dice (no foreground anywhere
    to measure) counts as no improvement instead of stopping the run. It prints a
    line when it restores its state and when it stops the run.
    """

    def __init__(self, patience: int, min_delta: float = 0.0):
        if patience < 0:
            raise SegError(f"--early_stopping_patience must be 0 or more, got {patience}")
        super().__init__(monitor=MONITOR, mode="max", patience=patience, min_delta=min_delta,
                         check_finite=False, check_on_train_epoch_end=False)
        self.restored: Optional[dict] = None
        self._stopped_now: Optional[int] = None

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the count and best score, keeping the configured patience."""
        patience = self.patience
        super().load_state_dict(state_dict)
        self.restored, self.patience = dict(state_dict), patience

    def on_train_start(self, trainer, pl_module) -> None:
        """Say what a resume restored."""
        if self.restored is None or not trainer.is_global_zero:
            return
        was = self.restored.get("patience")
        changed = f" (checkpoint: {was})" if was != self.patience else ""
        print(f"early stopping: restored {self.wait_count} validation(s) without a better {MONITOR} "
              f"(best {float(self.best_score):.4f}); patience {self.patience}{changed}", flush=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        """Lightning's check; note the epoch when it stops the run."""
        stopping = trainer.should_stop
        super().on_validation_end(trainer, pl_module)
        if trainer.should_stop and not stopping and self.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            self._stopped_now = trainer.current_epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Say why the run stops, after the epoch's ETA line (monitoring callbacks run last)."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._stopped_now == trainer.current_epoch and trainer.is_global_zero:
            print(f"early stopping after epoch {trainer.current_epoch + 1}: {MONITOR} did not improve in "
                  f"{self.wait_count} validation(s) (best {float(self.best_score):.4f})", flush=True)


def optional_callbacks(early_stopping_patience: Optional[int], preview_every_n_epochs: int) -> list[Callback]:
    """The callbacks that `--early_stopping_patience` and `--preview_every_n_epochs` turn on."""
    if preview_every_n_epochs < 0:
        raise SegError(f"--preview_every_n_epochs must be 0 (off) or more, got {preview_every_n_epochs}")
    callbacks: list[Callback] = []
    if early_stopping_patience is not None:
        callbacks.append(SegEarlyStopping(early_stopping_patience))
    if preview_every_n_epochs > 0:
        callbacks.append(ValidationPreviews(preview_every_n_epochs))
    return callbacks


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
