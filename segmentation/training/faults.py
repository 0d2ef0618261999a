"""The fault point between two epochs (see `core.faults`), as a callback the default trainer carries."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from ..core.faults import fault_point


class KillBetweenEpochs(Callback):
    """Arrives at `between-epochs` when an epoch starts after this process finished one.

    By then Lightning has written every checkpoint of the finished epoch (ModelCheckpoint
    saves at the end of the training epoch, after its validation), and no step of the next
    epoch has run.
    """

    def __init__(self) -> None:
        self._finished_one = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """The fault point, from the second epoch of this process on."""
        if self._finished_one:
            fault_point("between-epochs")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Remember that an epoch finished."""
        self._finished_one = True
