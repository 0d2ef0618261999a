"""`seg test`: only held-out cases, scored in each input's geometry against its label file, the split named."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from ..helpers import copy_run, dice_by_numpy, only_run_dir, tiny_fit_args


def csv_rows(run, checkpoint: str = "last") -> list[dict]:
    """The rows of the table `seg test` wrote beside the tested checkpoint's run: `<run>/test/<checkpoint>.csv`."""
    assert [p.name for p in run.parent.iterdir()] == [run.name]  # seg test made no version_N of its own
    return list(csv.DictReader((run / "test" / f"{checkpoint}.csv").open()))


def test_a_run_without_test_cases_is_refused_saying_how_to_get_some(finished_run, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    result = seg("test", "--ckpt_path", str(run / "checkpoints/last.ckpt"), cwd=tmp_path)
    assert result.returncode == 2
    assert "no test cases" in result.stderr and "--data.test_fraction" in result.stderr
    assert "--data.test_on val" in result.stderr and not (run / "test").exists()


def test_validation_cases_on_request_are_labelled_val(finished_run, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    result = seg("test", "--ckpt_path", str(run / "checkpoints/last.ckpt"), "--data.test_on=val", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    val = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["MSDDataModule"]["val"]
    rows = csv_rows(run)
    assert [row["case"] for row in rows] == [*val, "mean"] and {row["split"] for row in rows} == {"val"}
    assert "cases of the val split" in result.stdout


@pytest.mark.floors  # (repeated with the lowest Lightning and MONAI admitted)
def test_the_test_split_is_held_out_and_scored_in_native_space(demo_root, tmp_path, seg):
    """Trained at 2 x 2 x 2.5 mm (the demo's native grid is 1.5 x 1.5 x 2): seg test's per-case Dice equals numpy's
    on the label maps `seg predict` writes in each input's geometry, against labelsTr."""
    fit = tiny_fit_args(demo_root, "--trainer.max_epochs=1", "--data.test_fraction=0.34",
                        "--data.spacing=[2.0,2.0,2.5]")
    assert seg(*fit, cwd=tmp_path).returncode == 0
    run = only_run_dir(tmp_path / "lightning_logs")
    ckpt = run / "checkpoints/last.ckpt"
    split = torch.load(ckpt, map_location="cpu", weights_only=False)["MSDDataModule"]
    assert len(split["test"]) == 2 and not set(split["test"]) & set(split["train"] + split["val"])
    assert split["test_source"].startswith("test_fraction 0.34")

    result = seg("test", "--ckpt_path", str(ckpt), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 cases of the test split, scored in each input's geometry" in result.stdout
    rows = csv_rows(run)
    assert [row["case"] for row in rows] == [*split["test"], "mean"] and {row["split"] for row in rows} == {"test"}

    images = [str(demo_root / "imagesTr" / f"{case}.nii.gz") for case in split["test"]]
    assert seg("predict", "--ckpt_path", str(ckpt), f"--data.predict_images={json.dumps(images)}",
               "--prediction_dir=out", cwd=tmp_path).returncode == 0
    for row, case in zip(rows, split["test"]):
        predicted = np.asarray(nib.load(tmp_path / "out" / f"{case}.nii.gz").dataobj)
        truth = np.asarray(nib.load(demo_root / "labelsTr" / f"{case}.nii.gz").dataobj)
        assert predicted.shape == truth.shape  # the native grid, not the 2 mm one
        for value, name in ((1, "organ"), (2, "lesion")):
            assert float(row[f"dice/{name}"]) == pytest.approx(dice_by_numpy(predicted, truth, value), abs=1e-6)
            hd95 = float(row[f"hd95/{name}"])
            assert math.isnan(hd95) or hd95 >= 0.0
    for key in ("dice/organ", "dice/lesion"):
        assert float(rows[-1][key]) == pytest.approx(np.mean([float(row[key]) for row in rows[:-1]]), abs=1e-6)
