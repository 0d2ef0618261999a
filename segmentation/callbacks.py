"""Logging callbacks `seg` adds by default: the learning rate once per epoch under the tag `lr`."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback, LearningRateMonitor


def with_default_logging(callbacks: list[Callback]) -> list[Callback]:
    """`callbacks` plus an epoch-wise LearningRateMonitor, unless the user configured one."""
    if any(isinstance(callback, LearningRateMonitor) for callback in callbacks):
        return list(callbacks)
    return [*callbacks, LearningRateMonitor(logging_interval="epoch")]
