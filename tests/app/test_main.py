"""The `seg` command: its overview, LightningCLI's surface, the run directory of a fit, and bad input.

A few cases run the real console script as a subprocess, for what only a new process shows
(start-up imports, exit status, stderr); the rest run in-process.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from ..helpers import DEMO_CONFIG, REPO, TINY_CONFIG, run_seg, scalars, tiny_fit_args


def test_overview_lists_every_subcommand_without_loading_lightning(tmp_path):
    result = run_seg("--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    for command in ("fit", "validate|test|predict", "synth", "check-data", "report", "estimate", "batch"):
        assert f"seg {command}" in result.stdout, command
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "segmentation.app.main" in imported and not {"lightning", "monai", "torch"} & imported


def test_fit_help_is_lightning_clis_with_the_schedule_options(seg, tmp_path):
    result = seg("fit", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "--model.scheduler" in result.stdout and "--model.schedule.plateau_patience" in result.stdout
    assert "--model.schedule.onecycle_div_factor" in result.stdout  # every schedule option can be set


def test_unknown_subcommand_exits_2_naming_the_valid_ones(seg):
    result = seg("train")
    assert result.returncode == 2 and "'train'" in result.stderr and "fit" in result.stderr


def test_print_config_shows_linked_defaults(seg, tmp_path):
    result = seg("fit", "--config", str(DEMO_CONFIG), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["model"]["scheduler"] == "reduce_on_plateau" and config["model"]["schedule"]["plateau_patience"] == 5
    assert config["data"]["class_path"] == "segmentation.data.msd.MSDDataModule"


def test_make_demo_writes_the_data_once_then_trains(tmp_path):
    dry = subprocess.run(["make", "-s", "-n", "-f", str(REPO / "Makefile"), "-o", ".installed", "demo"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    synth, fit = dry.stdout.strip().splitlines()[-2:]
    assert "test -f data/demo/dataset.json ||" in synth and "-m segmentation synth demo --out data/demo" in synth
    assert fit.endswith(f"-m segmentation fit --config {DEMO_CONFIG}")


def test_demo_config_writes_the_run_directory(seg, tmp_path):
    """`seg synth demo` then `seg fit --config configs/demo.yaml` (tiny): checkpoints, events, configs."""
    assert seg("synth", "demo", "--out", "data/demo", "--cases", "6", "--shape", "32", "32", "32",
               cwd=tmp_path).returncode == 0
    result = seg("fit", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs/demo_unet_reduce_on_plateau/version_0"
    names = {p.name for p in (run / "checkpoints").iterdir()}
    assert names == {"epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt", "best.ckpt"}
    assert list(run.glob("events.out.tfevents.*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["root"] == "data/demo" and saved["model"]["scheduler"] == "reduce_on_plateau"
    linked = yaml.safe_load((run / "hparams.yaml").read_text())  # channels and classes came from the data
    assert (linked["in_channels"], linked["out_channels"], linked["class_names"]) == (1, 3, ["organ", "lesion"])
    assert linked["schedule"]["plateau_patience"] == 5  # a plain mapping, not a pickled object
    for tag in ("lr", "train/loss", "val/loss", "val/dice", "val/dice/organ", "val/dice/lesion"):
        assert len(scalars(run, tag)) == 2, tag
    assert "seg run summary" in result.stdout and "best val/dice" in result.stdout


def test_a_checkpoint_every_epoch_also_without_validation(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=3", "--trainer.check_val_every_n_epoch=2"),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = tmp_path / "lightning_logs/demo_unet_reduce_on_plateau/version_0/checkpoints"
    assert {"epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"} <= {p.name for p in checkpoints.iterdir()}


def test_a_whole_number_of_batches_is_a_count_not_a_fraction(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=1", "--trainer.limit_val_batches=1"), cwd=tmp_path)
    assert result.returncode == 0 and "limit_val_batches=1)` was configured so 1 batch will be used" in result.log
    last = next(tmp_path.glob("lightning_logs/*/version_0/checkpoints/last.ckpt"))
    resumed = seg("fit", f"--ckpt_path={last}", "--trainer.max_epochs=2", cwd=tmp_path)  # (from the checkpoint only)
    assert resumed.returncode == 0 and "limit_val_batches=1)` was configured so 1 batch will be used" in resumed.log


@pytest.mark.slow
def test_missing_data_root_is_one_line_and_exit_2_from_the_real_command(tmp_path):
    missing = tmp_path / "no_such_task"
    result = run_seg(*tiny_fit_args(missing), cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("seg: error:")]
    assert len(errors) == 1 and str(missing) in errors[0] and f"seg synth demo --out {missing}" in errors[0]
    assert "Traceback" not in result.stderr
    assert not missing.exists()  # a datamodule never writes data


@pytest.mark.parametrize("interval", ["0.5", "3"])
def test_validation_inside_an_epoch_is_refused_before_anything_is_built(demo_root, tmp_path, seg, interval):
    result = seg(*tiny_fit_args(demo_root, f"--trainer.val_check_interval={interval}"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"--trainer.val_check_interval {interval}" in result.stderr and "check_val_every_n_epoch" in result.stderr
    assert not (tmp_path / "lightning_logs").exists()
