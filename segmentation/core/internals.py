"""The one door to private names of Lightning, torch and MONAI: every use of one is a function here.

Each function says what it relies on; `tests/core/test_internals.py` has a test per function that fails
when an upgrade changes that behaviour, and `tests/test_layers.py` fails when any other module names a
private attribute of those libraries. Keep every entry small and its fallback explicit.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from torch import Tensor
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from typing_extensions import override


class CommandLineWinsCLI(LightningCLI):
    """LightningCLI without its own checkpoint-hyper-parameter parsing (`LightningCLI._parse_ckpt_path`).

    Lightning would put a checkpoint's hyper-parameters over the explicit arguments; seg composes the
    checkpoint's stored config first (`app.argv.with_stored_config`) so that the user's arguments win.
    """

    @override
    def _parse_ckpt_path(self) -> None:
        """Disabled (see the class docstring)."""

    def trainer_config(self) -> dict:
        """The `trainer` section of the parsed config of this subcommand (`LightningCLI._get`)."""
        return self._get(self.config_init, "trainer", default={})

    def subcommand_yaml(self) -> str:
        """The subcommand's composed config as YAML, as `SaveConfigCallback` would save it (`LightningCLI._parser`)."""
        return self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False)

    def set_ckpt_path(self, ckpt_path: Optional[str]) -> None:
        """The checkpoint the subcommand's trainer method receives: LightningCLI passes `config_init[subcommand]
        ["ckpt_path"]` to `trainer.fit/validate/test/predict` (`LightningCLI._prepare_subcommand_kwargs`)."""
        self.config_init.get(self.subcommand, self.config_init)["ckpt_path"] = ckpt_path


def batches_trained_this_epoch(trainer: Trainer) -> int:
    """Training batches this rank has processed in the current epoch (`fit_loop.epoch_loop.batch_progress`)."""
    # Lightning declares `current` a _ReadyCompletedTracker but fills it with a _ProcessedTracker
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)  # type: ignore[attr-defined]


def epochs_completed(trainer: Trainer) -> int:
    """Epochs the fit loop has completed: where training (re)starts (`fit_loop.epoch_progress`)."""
    # Lightning declares `current` a _ReadyCompletedTracker but fills it with a _ProcessedTracker
    return int(trainer.fit_loop.epoch_progress.current.processed)  # type: ignore[attr-defined]


def logging_step(trainer: Trainer) -> int:
    """The step Lightning logs metrics at (`_batches_that_stepped`: one behind `global_step` at an epoch's end)."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


def epochs_completed_in_checkpoint(checkpoint: dict) -> Optional[int]:
    """Epochs completed as a saved checkpoint's loop state says (`loops/fit_loop/epoch_progress`), or None when the
    checkpoint has no such state."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return int(progress["processed"]) if "processed" in progress else None


def checkpoint_in_memory(trainer: Trainer) -> dict:
    """The checkpoint `trainer.save_checkpoint` would write now, not written (`_checkpoint_connector.dump_checkpoint`).

    Its tensors are the live ones, not copies: it stays this moment's state only while nothing trains.
    """
    return trainer._checkpoint_connector.dump_checkpoint(weights_only=False)


def with_validation_pending(checkpoint: dict) -> dict:
    """`checkpoint`, taken at `on_train_batch_end` of an epoch's last batch, made to read as saved at the start of
    that epoch's validation: resumed, Lightning runs the whole validation again, then the next epoch.

    The counters of `loops/fit_loop/epoch_loop.batch_progress` (the batch completed) and of
    `epoch_loop.val_loop.batch_progress` (one validation batch started, none processed) select Lightning's restart
    stages `RESTARTED_ON_LAST` and `RESTARTED_MID_EVALUATION`, from which it re-runs the validation from its start.
    """
    loops = checkpoint["loops"]["fit_loop"]
    trained = loops["epoch_loop.batch_progress"]
    for counts in (trained["total"], trained["current"]):
        counts["completed"] = counts["processed"]
    validation = loops["epoch_loop.val_loop.batch_progress"]
    for counts in (validation["total"], validation["current"]):
        counts.update(ready=1, started=1, processed=0, completed=0)
    validation["is_last_batch"] = False
    return checkpoint


def end_process(status: int) -> None:
    """End this process now with exit status `status` (`os._exit`: no `finally`, no atexit handlers, no flush)."""
    os._exit(status)


def set_last_lr(scheduler: LRScheduler | ReduceLROnPlateau, lrs: Sequence[float | Tensor]) -> None:
    """What `scheduler.get_last_lr()` returns until its next step (`_last_lr`)."""
    scheduler._last_lr = list(lrs)


def load_scheduler_fields(scheduler: Any, fields: dict) -> None:
    """Set fields of a torch scheduler's state as its `load_state_dict` does (`__dict__.update`), for a subset."""
    scheduler.__dict__.update(fields)


class ClosedFormScheduler(LRScheduler):
    """An LRScheduler whose `get_lr` is a closed form of `last_epoch`: `step(epoch)` then uses it as well (torch's
    `_get_closed_form_lr` hook, which `LRScheduler.step` calls when given an epoch)."""

    def _get_closed_form_lr(self) -> list[float | Tensor]:
        return self.get_lr()
