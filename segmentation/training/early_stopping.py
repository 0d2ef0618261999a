"""Early stopping on the validation Dice that survives a resume."""

from __future__ import annotations

from typing import Optional

from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from typing_extensions import override

from ..core.constants import MONITOR
from ..core.errors import SegError
from ..core.log import log


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

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the count and best score, keeping the configured patience."""
        patience = self.patience
        super().load_state_dict(state_dict)
        self.restored, self.patience = dict(state_dict), patience

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        """Say what a resume restored."""
        if self.restored is None or not trainer.is_global_zero:
            return
        was = self.restored.get("patience")
        changed = f" (checkpoint: {was})" if was != self.patience else ""
        log.info(f"early stopping: restored {self.wait_count} validation(s) without a better {MONITOR} "
              f"(best {float(self.best_score):.4f}); patience {self.patience}{changed}")

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        """Lightning's check; note the epoch when it stops the run."""
        stopping = trainer.should_stop
        super().on_validation_end(trainer, pl_module)
        if trainer.should_stop and not stopping and self.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            self._stopped_now = trainer.current_epoch

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Say why the run stops, after the epoch's ETA line (monitoring callbacks run last)."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._stopped_now == trainer.current_epoch and trainer.is_global_zero:
            log.info(f"early stopping after epoch {trainer.current_epoch + 1}: {MONITOR} did not improve in "
                  f"{self.wait_count} validation(s) (best {float(self.best_score):.4f})")
