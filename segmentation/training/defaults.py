"""The callbacks seg adds to a trainer unless the config names its own.

Checkpoints (`with_default_checkpoints`): `epoch=<E>.ckpt` every epoch, `last.ckpt`, `best.ckpt`, written
once an epoch in the background (`checkpoint_writer`).
Logging (`with_default_logging`): the learning rate once per epoch (tag `lr`), each epoch's wall
time with the whole run's ETA, and the closing run summary. On request (`optional_callbacks`):
early stopping on `val/dice` and image previews.
"""

from __future__ import annotations

from typing import Optional

from lightning.fabric.plugins import CheckpointIO, ClusterEnvironment
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
)
from lightning.pytorch.plugins.environments import SLURMEnvironment

from ..core.constants import MONITOR
from ..core.errors import SegError
from ..core.log import log
from .checkpoint_writer import BackgroundCheckpoints, EpochCheckpointWriter
from .early_stopping import SegEarlyStopping
from .previews import ValidationPreviews
from .summary import RunSummary
from .timing import EpochTimer, EtaProgressBar


def every_epoch_checkpoint(keep_last: Optional[int] = None) -> ModelCheckpoint:
    """`epoch=<E>.ckpt` after every epoch (E from 0) plus `last.ckpt`; all kept, or the newest `keep_last`.

    Saved at the end of the training epoch, which Lightning reaches after that
    epoch's validation, so epochs without validation get their file too.
    """
    keep = dict(monitor="epoch", mode="max", save_top_k=keep_last) if keep_last else dict(save_top_k=-1)
    return ModelCheckpoint(
        filename="{epoch}",
        save_on_train_epoch_end=True,
        every_n_epochs=1,
        save_last=True,
        enable_version_counter=False,
        **keep,
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


def with_default_checkpoints(callbacks: list[Callback], keep_last: Optional[int] = None) -> list[Callback]:
    """`callbacks` plus the default checkpoints, unless the user configured a ModelCheckpoint."""
    if any(isinstance(callback, ModelCheckpoint) for callback in callbacks):
        return list(callbacks)
    # best.ckpt's callback first: both save at the end of the training epoch, in this order, so the epoch files
    # and last.ckpt carry the best score of their own epoch (a resume then compares with the true best)
    return [*callbacks, BackgroundCheckpoints(), best_checkpoint(), every_epoch_checkpoint(keep_last)]


def with_default_logging(callbacks: list[Callback], progress_bar: bool = True) -> list[Callback]:
    """`callbacks` plus the epoch timer, the summary and a LearningRateMonitor at the schedule's interval (unless
    configured: `lr` at each epoch's start, or at each optimizer step with `interval: step`),
    and, where the trainer shows a progress bar (`progress_bar`) and the config names none, `EtaProgressBar`."""
    timer = next((c for c in callbacks if isinstance(c, EpochTimer)), None)
    added: list[Callback] = []
    if timer is None:
        timer = EpochTimer()
        added.append(timer)
    if progress_bar and not any(isinstance(callback, ProgressBar) for callback in callbacks):
        added.append(EtaProgressBar(timer))
    callbacks = [*callbacks, *added, RunSummary()]
    if any(isinstance(callback, LearningRateMonitor) for callback in callbacks):
        return callbacks
    return [*callbacks, LearningRateMonitor(logging_interval=None)]  # None: each scheduler's own interval


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


# torch has no deterministic CUDA kernel for these (its `use_deterministic_algorithms` documents them as raising;
# tests/training/test_defaults.py fails if a torch upgrade changes that)
CUDA_NONDETERMINISTIC = (
    "--trainer.deterministic true on CUDA: torch has no deterministic CUDA kernel for NLLLoss (the cross-entropy of "
    "softmax datasets) or for trilinear interpolation's backward (SegResNet's upsampling), where strict mode would "
    "stop the run; seg runs deterministic='warn': every other operation is deterministic, those two warn once and "
    "stay non-deterministic. Bitwise-repeatable runs: the CPU"
)


def accelerator_defaults(trainer_config: dict, cuda_available: bool) -> dict:
    """Trainer arguments for a CUDA machine that the config leaves unset: bf16 mixed precision and cuDNN's
    autotuner (off when `deterministic` asks for reproducible kernels; `deterministic` true becomes "warn", as
    strict mode has no CUDA kernel for two operations seg uses: `CUDA_NONDETERMINISTIC`). Nothing on a CPU-only
    machine."""
    accelerator = str(trainer_config.get("accelerator") or "auto")
    if not cuda_available or accelerator not in ("auto", "gpu", "cuda"):
        return {}
    defaults: dict[str, object] = {}
    if trainer_config.get("precision") is None:
        defaults["precision"] = "bf16-mixed"
    if trainer_config.get("benchmark") is None and not trainer_config.get("deterministic"):
        defaults["benchmark"] = True
    if trainer_config.get("deterministic") is True:
        defaults["deterministic"] = "warn"
        log.info(CUDA_NONDETERMINISTIC)
    return defaults


def with_seg_plugins(configured: object, on_slurm: bool) -> list:
    """The trainer's plugins: the configured ones plus seg's checkpoint writer (atomic, once per training state,
    in the background: `checkpoint_writer`) and, under SLURM, an
    environment without Lightning's auto-requeue (seg's preemption requeues into the run directory instead).

    A configured checkpoint writer would replace the atomic one: SegError naming `--trainer.plugins`.
    """
    plugins = list(configured) if isinstance(configured, (list, tuple)) else [configured] if configured else []
    if any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        raise SegError("--trainer.plugins: a CheckpointIO plugin would replace seg's atomic checkpoint writer "
                       "(every checkpoint whole, even after a kill); remove it from the config")
    plugins.append(EpochCheckpointWriter())
    if on_slurm and not any(isinstance(plugin, ClusterEnvironment) for plugin in plugins):
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins
