"""The step timer's arithmetic (measure.timer.StepTimer, measure.estimate.timed_figures) with fake timestamps: a
step and a validation case run from the end of the one before, so the data wait is inside them."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from segmentation.measure.estimate import Estimate, timed_figures
from segmentation.measure.timer import StepTimer

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess

MODULE = SimpleNamespace(device=torch.device("cpu"))
BATCH = {"image": [0, 0]}


class Clock:
    """A fake clock the test moves: `clock.at(t, hook, *args)` calls the hook at time t."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def at(self, now: float, hook, *args) -> None:
        self.now = now
        hook(None, MODULE, *args)


def timed_run() -> StepTimer:
    """Two epochs of two steps each (each step: 0.2 s waiting for its batch, 0.1 s of work), validation of three
    cases (the first 2 s, then 0.5 s each) after the last step, 0.05 s between the epochs' ends and starts."""
    clock = Clock()
    timer = StepTimer(clock=clock)
    clock.at(10.0, timer.on_train_start)
    end = 10.0
    for _epoch in range(2):
        clock.at(end + 0.05, timer.on_train_epoch_start)
        end += 0.05
        for step in range(2):
            end += 0.2 + 0.1  # (Lightning fetches and moves the batch between the hooks: no hook marks it)
            clock.at(end, timer.on_train_batch_end, None, BATCH, step)
    clock.at(end + 0.01, timer.on_validation_epoch_start)
    end += 0.01
    for case, seconds in enumerate((2.0, 0.5, 0.5)):
        end += seconds
        clock.at(end, timer.on_validation_batch_end, None, BATCH, case)
    clock.at(end + 0.05, timer.on_train_end)
    return timer


def test_a_step_runs_from_the_end_of_the_one_before_so_the_wait_for_its_batch_counts():
    timer = timed_run()
    assert timer.step_seconds(0) == pytest.approx([0.3] * 4)  # 0.2 s wait + 0.1 s work, not 0.1 s
    assert timer.step_seconds(2) == pytest.approx([0.3, 0.3])
    assert timer.samples_per_second(2) == pytest.approx(4 / 0.6)
    # each epoch's first step counts from its epoch's start, not from the validation or epoch end before it
    assert timer.step_starts[2] == pytest.approx(10.0 + 0.05 + 0.6 + 0.05)


def test_a_validation_case_runs_from_the_end_of_the_one_before_and_the_first_is_its_warm_up():
    timer = timed_run()
    assert timer.validation_seconds() == pytest.approx([2.0, 0.5, 0.5])
    assert timer.validation_seconds(1) == pytest.approx([0.5, 0.5])


def test_the_estimate_leaves_the_warm_ups_out_of_the_means_and_pays_them_once():
    figures = timed_figures(timed_run(), epochs=2)
    assert figures["seconds_per_step"] == pytest.approx(0.3) and figures["timed_steps"] == 2
    assert figures["seconds_per_validation_case"] == pytest.approx(0.5)  # not (2 + 0.5 + 0.5) / 3
    assert figures["timed_validation_cases"] == 2 and figures["validation_warmup_cases"] == 1
    assert figures["warmup_seconds"] == pytest.approx(2.0 - 0.5)  # the steps' warm-up: no extra here
    # the epochs' own time: 0.05 s before each epoch, 0.01 s before validation, 0.05 s at the end, over 2 epochs
    assert figures["epoch_overhead_seconds"] == pytest.approx((0.05 * 2 + 0.01 + 0.05) / 2)


def test_with_one_validation_case_it_is_timed_and_said_to_include_its_warm_up(caplog):
    caplog.set_level(logging.INFO)
    clock = Clock()
    timer = StepTimer(clock=clock)
    clock.at(0.0, timer.on_train_start)
    clock.at(0.0, timer.on_validation_epoch_start)
    clock.at(1.5, timer.on_validation_batch_end, None, BATCH, 0)
    clock.at(1.5, timer.on_train_end)
    figures = timed_figures(timer, epochs=1)
    assert figures["seconds_per_validation_case"] == 1.5 and figures["validation_warmup_cases"] == 0
    assert "none left out as warm-up" in caplog.text
    estimate = Estimate(preparation_seconds=0.0, steps_per_epoch=1, validation_cases=1, validation_every_n_epochs=1,
                        max_epochs=1, **figures)
    assert "1.50 s per case (mean of 1, no warm-up case left out: too few cases)" in estimate.text()
    warmed = Estimate.from_dict({**estimate.as_dict(), "timed_validation_cases": 2, "validation_warmup_cases": 1})
    assert "per case (mean of 2 after 1 warm-up case)" in warmed.text()
