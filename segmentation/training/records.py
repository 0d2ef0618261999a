"""What every checkpoint records about its run, so that a checkpoint alone can resume it.

Under the key `core.constants.CHECKPOINT_RECORD_KEY` (`seg`): the run's composed config
(YAML), its `max_epochs`, world size and the version of seg that wrote it. A checkpoint from a newer seg, or
a torch file seg did not write, is refused by name (`refuse_unusable`).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Optional

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.constants import CHECKPOINT_RECORD_KEY, VERSION
from ..core.errors import SegError
from ..model.module import SegmentationModule


class RunRecord(Callback):
    """Stores in every checkpoint the run's composed config (YAML), its run directory, max_epochs and world size."""

    def __init__(self, config_yaml: str):
        self.config_yaml = config_yaml

    @override
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        """Add the record to the checkpoint being written."""
        checkpoint[CHECKPOINT_RECORD_KEY] = {
            "config": self.config_yaml, "max_epochs": trainer.max_epochs,
            "world_size": trainer.world_size, "version": VERSION,
        }


def record_of(checkpoint: dict) -> dict:
    """The run record of a loaded checkpoint (empty for a checkpoint written without seg)."""
    return checkpoint.get(CHECKPOINT_RECORD_KEY) or {}


def stored_config(checkpoint: dict) -> Optional[str]:
    """The composed config (YAML) a checkpoint's run was started with, if it recorded one."""
    return record_of(checkpoint).get("config") or None


def version_tuple(version: str) -> tuple[int, ...]:
    """`"1.10.2"` -> (1, 10, 2); the leading numbers only (`"0.2.0rc1"` -> (0, 2, 0), `""` -> ())."""
    numbers: list[int] = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(numbers)


def refuse_unusable(path: Path, checkpoint: dict) -> None:
    """SegError for a checkpoint this seg cannot use: a torch file that is no Lightning checkpoint of seg, or one
    written by a newer seg (its model options unknown here)."""
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= set(checkpoint):
        found = ", ".join(sorted(map(str, checkpoint))[:6]) if isinstance(checkpoint, dict) else "no mapping"
        raise SegError(f"checkpoint {path} is a torch file but not one seg wrote (it holds {found or 'nothing'}; a seg "
                       f"checkpoint holds state_dict and hyper_parameters): give a .ckpt from a seg run")
    written_by = str(record_of(checkpoint).get("version") or "")
    known = set(inspect.signature(SegmentationModule.__init__).parameters)
    unknown = sorted(key for key in checkpoint["hyper_parameters"] if key not in known and not key.startswith("_"))
    if version_tuple(written_by) > version_tuple(VERSION) or unknown:
        raise SegError(f"checkpoint {path} was written by a newer seg ({written_by or 'unknown version'}; this is "
                       f"{VERSION})" + (f": its model options {', '.join(unknown)} are unknown here" if unknown
                                             else "") + "; upgrade seg to use it")
