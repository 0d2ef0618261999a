"""The estimate's projection and what it says it measured (measure.estimate)."""

from __future__ import annotations

import time

import pytest

from segmentation.measure.estimate import Estimate

from ..helpers import DEMO_CONFIG, TINY_CONFIG

unit = pytest.mark.unit  # pure logic: no Trainer, no subprocess (all here but the slow-loader test)


def figures(devices: str = "1", **changes) -> Estimate:
    settings = dict(preparation_seconds=10.0, seconds_per_step=0.5, steps_per_epoch=4, timed_steps=5,
                    seconds_per_validation_case=2.0, validation_cases=3, validation_every_n_epochs=2, max_epochs=10,
                    device="cuda:0", configured_devices=devices)
    return Estimate(**{**settings, **changes})


@unit
def test_each_epoch_costs_the_same_and_the_preparation_is_paid_once():
    ten, twenty = figures(max_epochs=10), figures(max_epochs=20)
    assert twenty.projected_seconds - ten.projected_seconds == pytest.approx(10 * ten.seconds_per_epoch)
    assert ten.projected_seconds - 10 * ten.seconds_per_epoch == pytest.approx(10.0)


@unit
def test_rarer_validation_makes_epochs_cheaper_down_to_the_training_steps():
    every_epoch, every_other, never = (figures(validation_every_n_epochs=1), figures(validation_every_n_epochs=2),
                                       figures(validation_cases=0))
    assert every_epoch.seconds_per_epoch > every_other.seconds_per_epoch > never.seconds_per_epoch
    half_steps = figures(seconds_per_step=0.25, validation_cases=0)
    assert never.seconds_per_epoch == pytest.approx(2 * half_steps.seconds_per_epoch)


@unit
def test_it_says_which_device_it_measured_and_that_more_devices_were_not():
    assert figures().text().splitlines()[-1] == "measured on one device (cuda:0)"
    assert "--trainer.devices 4, which splits each epoch's steps among them: not measured" in figures("4").text()


def short_run(**changes) -> Estimate:
    """Figures like those `seg estimate` measures for the tiny demo run on a 2-core CPU (2 epochs of 4 steps)."""
    settings = dict(preparation_seconds=0.2, seconds_per_step=0.016, steps_per_epoch=4, timed_steps=2,
                    seconds_per_validation_case=0.045, validation_cases=4, validation_every_n_epochs=1, max_epochs=2,
                    startup_seconds=5.0, trainer_seconds=0.3, warmup_seconds=0.1, epoch_overhead_seconds=0.05,
                    checkpoint_seconds=0.02, checkpoints_per_epoch=3, outside_seconds=1.4)
    return Estimate(**{**settings, **changes})


@unit
def test_the_projection_is_what_the_run_pays_once_plus_every_epoch_with_its_checkpoints():
    run = short_run()
    per_epoch = 0.016 * 4 + 0.045 * 4 + 0.05 + 3 * 0.02
    once = 5.0 + 0.2 + 0.3 + 0.1 + 1.4
    assert run.seconds_per_epoch == pytest.approx(per_epoch)
    assert run.once_seconds == pytest.approx(once)
    assert run.projected_seconds == pytest.approx(once + 2 * per_epoch)
    # the estimate of issue 18 counted the steps, the validation and the data only: 0.6 s for a 7.5 s run
    steps_only = short_run(startup_seconds=0.0, trainer_seconds=0.0, warmup_seconds=0.0, epoch_overhead_seconds=0.0,
                           checkpoints_per_epoch=0, outside_seconds=0.0)
    assert run.projected_seconds > 10 * steps_only.projected_seconds


@unit
def test_a_run_without_checkpoints_pays_no_checkpoint_writes():
    assert short_run(checkpoints_per_epoch=0).seconds_per_epoch == pytest.approx(
        short_run().seconds_per_epoch - 3 * 0.02)


@unit
def test_the_figures_survive_json_and_the_plan_line_says_once_and_per_epoch():
    run = short_run()
    assert Estimate.from_dict(run.as_dict()) == run
    assert run.short() == f"{run.projected_seconds:.1f}s ({run.once_seconds:.1f}s once + 2 x " \
                          f"{run.seconds_per_epoch:.2f}s per epoch)"
    assert "process start and exit: 1.4 s" in run.text()
    assert "process start and exit: not included" in short_run(outside_seconds=0.0).text()


class SlowLoader:
    """A loader whose every batch takes `delay` seconds more to arrive (a disk or pipeline the device waits on)."""

    def __init__(self, loader, delay: float) -> None:
        self.loader, self.delay = loader, delay

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            time.sleep(self.delay)
            yield batch


def test_the_estimate_counts_the_wait_for_each_batch_and_case(demo_root, tmp_path, monkeypatch):
    from segmentation.app.lightning_cli import build_cli
    from segmentation.measure.estimate import measure

    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), f"--data.root={demo_root}"])
    data, delay = cli.datamodule, 0.2
    for name in ("train_dataloader", "val_dataloader"):
        monkeypatch.setattr(data, name, lambda loader=getattr(data, name): SlowLoader(loader(), delay))
    result = measure(cli.model, data, dict(cli.config_init.get("trainer") or {}))
    # a step and a validation case each include their batch's 0.2 s wait (the steps themselves take ~0.02 s)
    assert result.seconds_per_step >= delay and result.seconds_per_validation_case >= delay
    assert result.timed_validation_cases == 1 and result.validation_warmup_cases == 1  # the demo's 2 cases
    assert result.epoch_overhead_seconds < delay  # the wait is the steps', not left over as the epochs' own
