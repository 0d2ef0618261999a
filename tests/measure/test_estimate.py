"""The estimate's projection and what it says it measured (measure.estimate)."""

from __future__ import annotations

import pytest

from segmentation.measure.estimate import Estimate

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def figures(devices: str) -> Estimate:
    return Estimate(preparation_seconds=10.0, seconds_per_step=0.5, steps_per_epoch=4, timed_steps=5,
                    seconds_per_validation_case=2.0, validation_cases=3, validation_every_n_epochs=2, max_epochs=10,
                    device="cuda:0", configured_devices=devices)


def test_the_projection_adds_amortised_validation_and_preparation():
    estimate = figures("1")
    assert estimate.seconds_per_epoch == 0.5 * 4 + 2.0 * 3 / 2
    assert estimate.projected_seconds == estimate.seconds_per_epoch * 10 + 10.0


def test_it_says_which_device_it_measured_and_that_more_devices_were_not():
    assert figures("1").text().splitlines()[-1] == "measured on one device (cuda:0)"
    assert "--trainer.devices 4, which splits each epoch's steps among them: not measured" in figures("4").text()
