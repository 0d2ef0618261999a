"""Each epoch's wall time in TensorBoard and the whole run's ETA, in the progress bar or one line per epoch."""

from __future__ import annotations

import math
import time
import warnings
from typing import Optional

from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from typing_extensions import override

from ..core.constants import EPOCH_SECONDS_TAG, MONITOR
from ..core.formatting import format_duration
from ..core.log import log

# Lightning computes epoch metrics (and would advise syncing them under DDP) after the hook that logs them:
# the epoch time is rank 0's own wall time, nothing to sync.
warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('time/")


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
    on epochs that validated). With a progress bar, `EtaProgressBar` (chosen where the
    trainer is built: `training.defaults`) shows `Epoch 3/50` and the ETA.
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.last_line: Optional[str] = None
        self.time_left: Optional[float] = None
        self._started, self._partial = 0.0, False
        self._validated = False

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        """Count this process's epochs only. A resume inside an epoch gets no `on_train_epoch_start` for it: its
        part-epoch is timed from here but left out of the per-epoch figures."""
        self.seconds, self.last_line, self.time_left = [], None, None
        self._started, self._partial = time.monotonic(), True

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Start the epoch's clock."""
        self._started, self._partial = time.monotonic(), False
        self._validated = False

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        """Remember that this epoch validated (its val/dice is fresh)."""
        self._validated = self._validated or not trainer.sanity_checking

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Log the epoch's seconds (Lightning has run its validation by now) and show the ETA."""
        seconds = time.monotonic() - self._started
        if not self._partial:
            self.seconds.append(seconds)
            pl_module.log(EPOCH_SECONDS_TAG, seconds, on_step=False, on_epoch=True, rank_zero_only=True)
        mean = sum(self.seconds) / len(self.seconds) if self.seconds else seconds
        done = trainer.current_epoch + 1
        left = remaining_epochs(trainer, done)
        stopping = trainer.should_stop and done >= (trainer.min_epochs or 0)  # e.g. early stopping, at validation
        self.time_left = 0.0 if stopping else None if left is None else left * mean
        parts = [f"epoch {epoch_of(trainer, done, done)}",
                 f"{mean:.1f} s/epoch" if self.seconds else f"{seconds:.1f} s for the rest of the epoch"]
        if stopping:
            parts.append("stopping")
        elif self.time_left is not None:
            parts.append(f"{format_duration(self.time_left)} left")
        dice = trainer.callback_metrics.get(MONITOR)
        if self._validated and dice is not None:
            parts.append(f"{MONITOR} {float(dice):.4f}")
        self.last_line = " · ".join(parts)
        if trainer.progress_bar_callback is None and trainer.is_global_zero:
            log.info(self.last_line)


class EtaProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar with `Epoch i/N` (1-based) and the whole run's ETA from an `EpochTimer`."""

    def __init__(self, timer: EpochTimer):
        super().__init__()
        self.timer = timer

    @override
    def on_train_epoch_start(self, trainer, *args) -> None:
        """Describe the epoch as `Epoch i/N`."""
        super().on_train_epoch_start(trainer, *args)
        epoch = trainer.current_epoch
        self.train_progress_bar.set_description(f"Epoch {epoch_of(trainer, epoch + 1, epoch)}")

    @override
    def get_metrics(self, trainer, pl_module) -> dict:
        """The usual metrics plus `eta` (time left, seconds per epoch) once an epoch has finished."""
        items = super().get_metrics(trainer, pl_module)
        if self.timer.time_left is not None and self.timer.seconds:
            mean = sum(self.timer.seconds) / len(self.timer.seconds)
            items["eta"] = f"{format_duration(self.timer.time_left)} ({mean:.1f} s/epoch)"
        return items
