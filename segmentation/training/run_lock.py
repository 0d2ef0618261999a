"""The run directory's lock held for the length of a fit (`core.directory_lock`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.directory_lock import acquire, release


class RunDirectoryLock(Callback):
    """Holds the run directory's lock while a fit trains into it (global rank 0), released at the end or on error."""

    def __init__(self) -> None:
        self.run_dir: Optional[Path] = None

    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        """Lock the run directory of a fit."""
        log_dir = trainer.log_dir if stage == "fit" else None  # a collective under DDP: every rank must ask
        if log_dir and trainer.is_global_zero:
            self.run_dir = Path(log_dir)
            acquire(self.run_dir)

    @override
    def teardown(self, trainer, pl_module, stage: str) -> None:
        """Release the lock."""
        if self.run_dir is not None:
            release(self.run_dir)

    @override
    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Release the lock when the fit fails."""
        self.teardown(trainer, pl_module, "fit")
