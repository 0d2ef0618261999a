"""Checkpoint callbacks `seg` adds when a config names none: every epoch, last, and best by val/dice."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback, ModelCheckpoint

MONITOR = "val/dice"


def every_epoch_checkpoint() -> ModelCheckpoint:
    """`epoch=<E>.ckpt` after every epoch (E from 0), all kept, plus `last.ckpt`.

    Saved at the end of the training epoch, which Lightning reaches after that
    epoch's validation, so epochs without validation get their file too.
    """
    return ModelCheckpoint(
        filename="{epoch}",
        save_on_train_epoch_end=True,
        save_top_k=-1,
        every_n_epochs=1,
        save_last=True,
        enable_version_counter=False,
    )


def best_checkpoint() -> ModelCheckpoint:
    """`best.ckpt`: the epoch with the highest validation Dice."""
    return ModelCheckpoint(
        filename="best",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )


def with_default_checkpoints(callbacks: list[Callback]) -> list[Callback]:
    """`callbacks` plus the default checkpoints, unless the user configured a ModelCheckpoint."""
    if any(isinstance(callback, ModelCheckpoint) for callback in callbacks):
        return list(callbacks)
    return [*callbacks, every_epoch_checkpoint(), best_checkpoint()]
