"""The one step timer of seg's measurements, and the trainer it measures in."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from lightning.pytorch import Callback, Trainer
from typing_extensions import override

from ..training.defaults import accelerator_defaults


def synchronise(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously), so that a wall time is the work's own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """When training started and ended, when each training step and each validation case started and ended (after
    the device finished it) and how many samples each step trained on.

    A step starts where the one before it ended, or where its epoch started: everything a step costs in a real run
    (waiting for the batch, moving it to the device, the step itself and every callback), and not the validation
    and epoch-end work between two epochs. A validation case likewise starts where the case before it ended, or
    where the validation started, so that loading the volume and moving it to the device count too. `clock` is
    the time source (seconds; tests pass a fake one).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.step_starts: list[float] = []
        self.step_ends: list[float] = []
        self.samples: list[int] = []
        self.validation_starts: list[float] = []
        self.validation_ends: list[float] = []
        self.train_started = self.train_ended = self._step_started = self._validation_started = 0.0

    def _now(self, pl_module) -> float:
        synchronise(pl_module.device)
        return self.clock()

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        self.train_started = self._step_started = self._now(pl_module)

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._step_started = self._now(pl_module)

    @override
    def on_train_end(self, trainer, pl_module) -> None:
        self.train_ended = self._now(pl_module)

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step_starts.append(self._step_started)
        self._step_started = self._now(pl_module)
        self.step_ends.append(self._step_started)
        self.samples.append(len(batch["image"]))

    @override
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._validation_started = self._now(pl_module)

    @override
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.validation_starts.append(self._validation_started)
        self._validation_started = self._now(pl_module)
        self.validation_ends.append(self._validation_started)

    def step_seconds(self, skip: int) -> list[float]:
        """Seconds of each step after the first `skip` (their warm-up: compilation, autotuning, allocation); the
        first step of each epoch counts from the start of its epoch."""
        return [end - start for start, end in zip(self.step_starts[skip:], self.step_ends[skip:])]

    def validation_seconds(self, skip: int = 0) -> list[float]:
        """Seconds of each validation case after the first `skip` (their warm-up: autotuning for the whole-volume
        shapes, recompiles, allocation), each from the end of the case before it."""
        return [end - start for start, end in zip(self.validation_starts[skip:], self.validation_ends[skip:])]

    def samples_per_second(self, skip: int) -> float:
        """Samples per second over the steps after the first `skip`."""
        seconds = sum(self.step_seconds(skip))
        return sum(self.samples[skip:]) / seconds if seconds > 0 else 0.0


def measuring_trainer(trainer_config: dict, callbacks: list, **limits: Any) -> Trainer:
    """A one-device Trainer for timing steps: the configured accelerator, precision and cuDNN setting (seg's
    CUDA defaults filled in, as `seg fit` runs), `limits` (steps, batches), and nothing that logs or saves."""
    settings = {**trainer_config, **accelerator_defaults(trainer_config, torch.cuda.is_available())}
    keep = {k: settings[k] for k in ("accelerator", "precision", "benchmark") if settings.get(k) is not None}
    return Trainer(**keep, devices=1, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, **limits)
