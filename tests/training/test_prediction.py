"""Predictions come back in the input's geometry; `seg test` reports per-case Dice and HD95."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np

from ..data.test_geometry import write_oblique_case
from ..helpers import copy_run


def test_predict_writes_label_maps_in_each_inputs_geometry(finished_run, tmp_path, seg):
    ckpt = finished_run / "checkpoints/last.ckpt"
    source, _ = write_oblique_case(tmp_path)
    result = seg("predict", "--ckpt_path", str(ckpt), "--data.spacing=[2.0,2.0,2.0]",
                     f"--data.predict_images=[{source}]", "--prediction_dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    written, original = nib.load(str(tmp_path / "out/oblique_ct.nii.gz")), nib.load(str(source))
    assert written.shape == original.shape
    assert np.allclose(written.affine, original.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}


def test_seg_test_reports_per_case_dice_and_hd95(finished_run, tmp_path, seg):
    ckpt = copy_run(finished_run, tmp_path) / "checkpoints/last.ckpt"
    result = seg("test", "--ckpt_path", str(ckpt), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    tables = list(tmp_path.glob("lightning_logs/*/version_*/test_metrics.csv"))
    assert len(tables) == 1
    rows = list(csv.DictReader(tables[0].open()))
    assert [row["case"] for row in rows] == ["demo_002", "demo_004", "mean"]  # the held-out split
    for key in ("dice/organ", "dice/lesion", "hd95/organ", "hd95/lesion"):
        values = [float(row[key]) for row in rows[:-1]]
        assert abs(float(rows[-1][key]) - np.nanmean(values)) < 1e-6
    assert all(0.0 <= float(row["dice/organ"]) <= 1.0 for row in rows)
    assert "test/dice/organ" in result.stdout + result.stderr
