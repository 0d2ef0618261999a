"""The one step timer of seg's measurements, and the trainer it measures in."""

from __future__ import annotations

import time
from typing import Any

import torch
from lightning.pytorch import Callback, Trainer
from typing_extensions import override

from ..training.defaults import accelerator_defaults


def synchronise(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously), so that a wall time is the work's own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(Callback):
    """When training started and ended, when each training step started and ended (after the device finished it)
    and how many samples it trained on, and the wall time of each validation case.

    A step starts where the one before it ended, or where its epoch started: everything a step costs in a real run
    (waiting for the batch, moving it to the device, the step itself and every callback), and not the validation
    and epoch-end work between two epochs.
    """

    def __init__(self) -> None:
        self.step_starts: list[float] = []
        self.step_ends: list[float] = []
        self.samples: list[int] = []
        self.validation_seconds: list[float] = []
        self._validation_started = self.train_started = self.train_ended = self._step_started = 0.0

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        self.train_started = self._step_started = time.perf_counter()

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronise(pl_module.device)
        self._step_started = time.perf_counter()

    @override
    def on_train_end(self, trainer, pl_module) -> None:
        synchronise(pl_module.device)
        self.train_ended = time.perf_counter()

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronise(pl_module.device)
        self.step_starts.append(self._step_started)
        self._step_started = time.perf_counter()
        self.step_ends.append(self._step_started)
        self.samples.append(len(batch["image"]))

    @override
    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._validation_started = time.perf_counter()

    @override
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        synchronise(pl_module.device)
        self.validation_seconds.append(time.perf_counter() - self._validation_started)

    def step_seconds(self, skip: int) -> list[float]:
        """Seconds of each step after the first `skip` (their warm-up: compilation, autotuning, allocation); the
        first step of each epoch counts from the start of its epoch."""
        return [end - start for start, end in zip(self.step_starts[skip:], self.step_ends[skip:])]

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
