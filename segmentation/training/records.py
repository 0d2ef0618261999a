"""What every checkpoint records about its run, so that a checkpoint alone can resume it.

Under the key `core.constants.CHECKPOINT_RECORD_KEY` (`seg`): the run's composed config
(YAML), its run directory and its `max_epochs`.
"""

from __future__ import annotations

from typing import Optional

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.constants import CHECKPOINT_RECORD_KEY


class RunRecord(Callback):
    """Stores in every checkpoint the run's composed config (YAML), its run directory, max_epochs and world size."""

    def __init__(self, config_yaml: str):
        self.config_yaml = config_yaml

    @override
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        """Add the record to the checkpoint being written."""
        checkpoint[CHECKPOINT_RECORD_KEY] = {
            "config": self.config_yaml, "max_epochs": trainer.max_epochs,
            "world_size": trainer.world_size,
        }


def record_of(checkpoint: dict) -> dict:
    """The run record of a loaded checkpoint (empty for a checkpoint written without seg)."""
    return checkpoint.get(CHECKPOINT_RECORD_KEY) or {}


def stored_config(checkpoint: dict) -> Optional[str]:
    """The composed config (YAML) a checkpoint's run was started with, if it recorded one."""
    return record_of(checkpoint).get("config") or None
