"""End-to-end runs of the real `seg` command (subprocesses) and its handling of bad input."""

from __future__ import annotations

import yaml

from .conftest import DEMO_CONFIG, TINY_CONFIG, run_seg, scalars, tiny_fit_args


def test_help_lists_the_subcommands(tmp_path):
    result = run_seg("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("fit", "validate", "test", "predict", "synth"):
        assert word in result.stdout
    assert "--model.scheduler" in run_seg("fit", "--help", cwd=tmp_path).stdout


def test_print_config_shows_linked_defaults(tmp_path):
    result = run_seg("fit", "--config", str(DEMO_CONFIG), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["model"]["scheduler"] == "reduce_on_plateau"
    assert config["data"]["class_path"] == "segmentation.data.MSDDataModule"


def test_demo_config_synthesizes_data_and_writes_the_run_directory(tmp_path):
    """`seg fit --config configs/demo.yaml` on a fresh folder: data made, checkpoints, events, config."""
    result = run_seg(
        "fit", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG),
        "--data.synthesize_if_missing=true", "--data.root=data/demo", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "data/demo/dataset.json").is_file()
    run = tmp_path / "lightning_logs/demo_unet_reduce_on_plateau/version_0"
    names = {p.name for p in (run / "checkpoints").iterdir()}
    assert names == {"epoch=0.ckpt", "epoch=1.ckpt", "last.ckpt", "best.ckpt"}
    assert list(run.glob("events.out.tfevents.*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["root"] == "data/demo" and saved["model"]["scheduler"] == "reduce_on_plateau"
    linked = yaml.safe_load((run / "hparams.yaml").read_text())  # channels and classes came from the data
    assert (linked["in_channels"], linked["out_channels"], linked["class_names"]) == (1, 3, ["organ", "lesion"])
    for tag in ("lr", "train/loss", "val/loss", "val/dice", "val/dice/organ", "val/dice/lesion"):
        assert len(scalars(run, tag)) == 2, tag
    assert "seg run summary" in result.stdout and "best val/dice" in result.stdout


def test_a_checkpoint_every_epoch_also_without_validation(demo_root, tmp_path):
    result = run_seg(
        *tiny_fit_args(demo_root, "--trainer.max_epochs=3", "--trainer.check_val_every_n_epoch=2"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = tmp_path / "lightning_logs/demo_unet_reduce_on_plateau/version_0/checkpoints"
    assert {"epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"} <= {p.name for p in checkpoints.iterdir()}


def test_unknown_scheduler_lists_valid_names(demo_root, tmp_path):
    result = run_seg(*tiny_fit_args(demo_root, "--model.scheduler=step"), cwd=tmp_path)
    assert result.returncode != 0
    assert "model.scheduler" in result.stderr
    assert all(name in result.stderr for name in ("reduce_on_plateau", "cosine", "onecycle", "polynomial"))
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_unknown_architecture_lists_valid_names(demo_root, tmp_path):
    result = run_seg(*tiny_fit_args(demo_root, "--model.architecture=vnet"), cwd=tmp_path)
    assert result.returncode != 0
    assert "model.architecture" in result.stderr
    assert all(name in result.stderr for name in ("unet", "segresnet", "dynunet", "swinunetr", "unetr"))
    assert "Traceback" not in result.stderr


def test_missing_data_root_names_the_path_and_suggests_synth(tmp_path):
    missing = tmp_path / "no_such_task"
    result = run_seg(*tiny_fit_args(missing), cwd=tmp_path)
    assert result.returncode == 2
    assert str(missing) in result.stderr and "seg synth demo --out" in result.stderr
    assert "Traceback" not in result.stderr
    assert not missing.exists()


def test_synth_writes_the_msd_layout(tmp_path):
    result = run_seg("synth", "demo", "--out", "task", "--cases", "3", "--shape", "16", "16", "16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "task/imagesTr").iterdir()) == [
        "demo_000.nii.gz", "demo_001.nii.gz", "demo_002.nii.gz"
    ]
    assert (tmp_path / "task/labelsTr/demo_002.nii.gz").is_file()
