"""The estimate's projection and what it says it measured (measure.estimate)."""

from __future__ import annotations

import pytest

from segmentation.measure.estimate import Estimate

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def figures(devices: str = "1", **changes) -> Estimate:
    settings = dict(preparation_seconds=10.0, seconds_per_step=0.5, steps_per_epoch=4, timed_steps=5,
                    seconds_per_validation_case=2.0, validation_cases=3, validation_every_n_epochs=2, max_epochs=10,
                    device="cuda:0", configured_devices=devices)
    return Estimate(**{**settings, **changes})


def test_each_epoch_costs_the_same_and_the_preparation_is_paid_once():
    ten, twenty = figures(max_epochs=10), figures(max_epochs=20)
    assert twenty.projected_seconds - ten.projected_seconds == pytest.approx(10 * ten.seconds_per_epoch)
    assert ten.projected_seconds - 10 * ten.seconds_per_epoch == pytest.approx(10.0)


def test_rarer_validation_makes_epochs_cheaper_down_to_the_training_steps():
    every_epoch, every_other, never = (figures(validation_every_n_epochs=1), figures(validation_every_n_epochs=2),
                                       figures(validation_cases=0))
    assert every_epoch.seconds_per_epoch > every_other.seconds_per_epoch > never.seconds_per_epoch
    half_steps = figures(seconds_per_step=0.25, validation_cases=0)
    assert never.seconds_per_epoch == pytest.approx(2 * half_steps.seconds_per_epoch)


def test_it_says_which_device_it_measured_and_that_more_devices_were_not():
    assert figures().text().splitlines()[-1] == "measured on one device (cuda:0)"
    assert "--trainer.devices 4, which splits each epoch's steps among them: not measured" in figures("4").text()
