"""One checkpoint write per epoch, off the training thread.

At the end of an epoch Lightning asks for up to three files of one training state: `best.ckpt` (when
val/dice improved), `epoch=<E>.ckpt` and `last.ckpt`. `EpochCheckpointWriter` copies that state to host
memory on the training thread (so training goes on while it is written), serialises it once in a
background thread with seg's atomic writer, and makes the other names hard links to that file (each
link made beside its name and renamed onto it: atomic; a copy where the file system has no hard links).
Deleting an epoch file (`--keep_last_epochs`) removes one name: `last.ckpt` and `best.ckpt` keep the data.

At most one write is in flight. `BackgroundCheckpoints` lets the writer defer the run's own checkpoint
folder only while the fit trains, starts the write when the next epoch (or batch) begins and waits for it
when training ends; a preemption and the kill point `between-epochs` wait for it (`settle_checkpoints`).
Any other save (a tuner's temporary file, a save outside training) is written before the call returns.
A write that fails is raised on the training thread at the next start, wait or save.

Lightning's `AsyncCheckpointIO` is not used: it clones every tensor on its device (a second copy of the
weights and optimizer state in GPU memory), queues every request (three full copies an epoch) and has no
way to wait for the write in flight before a preemption ends the process.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning_utilities.core.apply_func import apply_to_collection
from typing_extensions import override

from ..core.faults import fault_point
from ..core.storage import is_write_refusal
from .checkpointing import AtomicCheckpointIO, write_checkpoint_file

HEAVY_PARTS = ("state_dict", "optimizer_states")  # unchanged between saves of one training step


def host_copy(checkpoint: Any) -> Any:
    """`checkpoint` with every tensor copied to host memory (containers rebuilt): what training may not change."""
    return apply_to_collection(checkpoint, torch.Tensor, lambda tensor: tensor.detach().to("cpu", copy=True))


@dataclass
class PendingWrite:
    """A training state copied to host memory and the file names it goes to (the first one is written)."""

    key: tuple[str, int, int]  # (folder, epoch, global step): saves with one key hold one training state
    checkpoint: dict
    paths: list[Path] = field(default_factory=list)


class EpochCheckpointWriter(CheckpointIO):
    """Lightning's checkpoint plugin: one atomic write per training state, in a background thread, other names
    as hard links to it. See the module's documentation."""

    def __init__(self, writer: Optional[AtomicCheckpointIO] = None) -> None:
        super().__init__()
        self.writer = writer or AtomicCheckpointIO()
        self.deferred_folder: Optional[Path] = None  # saves into it wait for `start` (set by BackgroundCheckpoints)
        self.pending: Optional[PendingWrite] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._in_flight: Optional[Future] = None

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        """Take `checkpoint` for `path`: joined to the pending write of the same training state, or a new one."""
        path = Path(path)
        key = (str(path.parent.absolute()), int(checkpoint.get("epoch", -1)), int(checkpoint.get("global_step", -1)))
        pending = self.pending
        if pending is not None and pending.key == key:
            # a later request of the same state: its callback states are the newer ones; the tensors are the same
            light = host_copy({k: v for k, v in checkpoint.items() if k not in HEAVY_PARTS})
            pending.checkpoint = {**light, **{k: pending.checkpoint[k] for k in HEAVY_PARTS if k in pending.checkpoint}}
            if path not in pending.paths:
                pending.paths.append(path)
        else:
            self.start()
            self.pending = PendingWrite(key, host_copy(checkpoint), [path])
        if self.deferred_folder is None or path.parent.absolute() != self.deferred_folder:
            self.settle()

    def start(self) -> None:
        """Begin writing the pending state in the background, after the write in flight (at most one)."""
        if self.pending is None:
            return
        self.wait()
        pending, self.pending = self.pending, None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seg-checkpoint")
        self._in_flight = self._executor.submit(self._write, pending)

    def wait(self) -> None:
        """Block until the write in flight is on disk; raise its error here, on the caller's thread."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def settle(self) -> None:
        """Write everything asked for so far and wait for it."""
        self.start()
        self.wait()

    def _write(self, pending: PendingWrite) -> None:
        first, *others = pending.paths
        self.writer.save_checkpoint(pending.checkpoint, first)
        for other in others:
            link_atomically(first, other)

    @override
    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Optional[bool] = None) -> dict:
        """The atomic writer's safe load (after any write in flight, which may be this very file)."""
        self.settle()
        return self.writer.load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    @override
    def remove_checkpoint(self, path: Any) -> None:
        """Remove one name of a checkpoint (a pending name is dropped instead); links to its data keep it."""
        path = Path(path)
        if self.pending is not None and path in self.pending.paths:
            self.pending.paths.remove(path)
            if not self.pending.paths:
                self.pending = None
            return
        self.wait()
        self.writer.remove_checkpoint(path)

    @override
    def teardown(self) -> None:
        """The end of a trainer stage: everything written, the thread stopped."""
        try:
            self.settle()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


def link_atomically(source: Path, target: Path) -> None:
    """Make `target` another name of `source`'s data: a hard link made beside `target` and renamed onto it (a
    copy where the file system has no hard links), passing the fault point `checkpoint-before-rename`."""
    write_checkpoint_file(target, lambda partial: link_or_copy(source, partial))


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link `target` to `source`; a copy of it where the file system refuses hard links."""
    try:
        os.link(source, target)
    except OSError as err:
        if is_write_refusal(err):
            raise
        shutil.copyfile(source, target)


def checkpoint_writer(trainer) -> Optional[EpochCheckpointWriter]:
    """The trainer's `EpochCheckpointWriter`, if it writes through one."""
    writer = trainer.strategy.checkpoint_io
    return writer if isinstance(writer, EpochCheckpointWriter) else None


def settle_checkpoints(trainer) -> None:
    """Every checkpoint the trainer was asked for is on disk when this returns (no-op without seg's writer)."""
    writer = checkpoint_writer(trainer)
    if writer is not None:
        writer.settle()


class BackgroundCheckpoints(Callback):
    """Lets seg's writer defer the run's checkpoint folder while the fit trains: starts the write when the next
    epoch or batch begins, and waits for it when training ends."""

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        """Defer saves into the run's checkpoint folder from now on."""
        writer, callback = checkpoint_writer(trainer), trainer.checkpoint_callback
        if writer is not None and callback is not None and callback.dirpath:
            writer.deferred_folder = Path(callback.dirpath).absolute()

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Write the finished epoch's checkpoints while this epoch trains."""
        writer = checkpoint_writer(trainer)
        if writer is not None:
            writer.start()

    @override
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Write a checkpoint saved after a step (a configured step interval) while the next step trains."""
        writer = checkpoint_writer(trainer)
        if writer is not None and writer.pending is not None:
            writer.start()

    @override
    def on_train_end(self, trainer, pl_module) -> None:
        """Training is over: everything written, and later saves written at once."""
        writer = checkpoint_writer(trainer)
        if writer is not None:
            writer.settle()
            writer.deferred_folder = None

    @override
    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Later saves (Lightning's on an exception, a preemption's) are written at once."""
        writer = checkpoint_writer(trainer)
        if writer is not None:
            writer.deferred_folder = None


class KillBetweenEpochs(Callback):
    """Arrives at `between-epochs` when an epoch starts after this process finished one.

    By then every checkpoint of the finished epoch is written (ModelCheckpoint saves at the
    end of the training epoch, after its validation; the write in the background is waited for),
    and no step of the next epoch has run.
    """

    def __init__(self) -> None:
        self._finished_one = False

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """The fault point, from the second epoch of this process on."""
        if self._finished_one:
            settle_checkpoints(trainer)
            fault_point("between-epochs")

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Remember that an epoch finished."""
        self._finished_one = True
