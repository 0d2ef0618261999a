"""`seg test|predict --postprocessing FILE` (issue 20, part 5): the decision applied to every label map written and
scored, said in the output; a decision of other classes refused in one line."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from segmentation.model.postprocessing import Postprocessing, Step, keep_largest

from ..helpers import copy_run, dice_by_numpy

DEMO_CLASSES = {"organ": (1,), "lesion": (2,)}


def decision_file(path, classes=DEMO_CLASSES, applied=("organ", "lesion")):
    """A decision that keeps the largest component of the `applied` classes."""
    steps = [Step(name, values, name in applied, 0.5, 0.6) for name, values in classes.items()]
    path.write_text(Postprocessing(dict(classes), steps, cases=2).to_json())
    return path


def test_seg_test_and_predict_apply_the_decision_and_say_so(finished_run, demo_root, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    ckpt = run / "checkpoints/last.ckpt"
    val = torch.load(ckpt, map_location="cpu", weights_only=False)["MSDDataModule"]["val"]
    root = demo_root
    images = json.dumps([str(root / "imagesTr" / f"{case}.nii.gz") for case in val])
    pp = decision_file(tmp_path / "pp.json")

    plain = seg("predict", "--ckpt_path", str(ckpt), f"--data.predict_images={images}", "--prediction_dir=plain",
                cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-2000:]
    fixed = seg("predict", "--ckpt_path", str(ckpt), f"--data.predict_images={images}", "--prediction_dir=fixed",
                "--postprocessing", str(pp), cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert f"postprocessing from {pp}: keep the largest component of organ, lesion" in fixed.log
    islands = 0
    for case in val:
        before = np.asanyarray(nib.load(tmp_path / "plain" / f"{case}.nii.gz").dataobj)
        after = np.asanyarray(nib.load(tmp_path / "fixed" / f"{case}.nii.gz").dataobj)
        assert np.array_equal(after, keep_largest(keep_largest(before, (1,)), (2,)))
        islands += sum(ndimage.label(before == value)[1] > 1 for value in (1, 2))
    assert islands, "the tiny model's label maps have islands to remove"

    scored = seg("test", "--ckpt_path", str(ckpt), "--data.test_on=val", "--postprocessing", str(pp), cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "keep the largest component of organ, lesion" in scored.log
    rows = {row["case"]: row for row in csv.DictReader((run / "test/last.postprocessed.csv").open())}
    changed = 0
    for case in val:  # the scores are those of the postprocessed maps, not the plain ones'
        after = np.asanyarray(nib.load(tmp_path / "fixed" / f"{case}.nii.gz").dataobj)
        before = np.asanyarray(nib.load(tmp_path / "plain" / f"{case}.nii.gz").dataobj)
        truth = np.rint(np.asanyarray(nib.load(root / "labelsTr" / f"{case}.nii.gz").dataobj))
        for name, (value,) in DEMO_CLASSES.items():
            assert float(rows[case][f"dice/{name}"]) == pytest.approx(dice_by_numpy(after, truth, value), abs=1e-6)
            changed += abs(float(rows[case][f"dice/{name}"]) - dice_by_numpy(before, truth, value)) > 1e-6
    assert changed, "removing the islands changed a scored Dice"


def test_a_decision_of_other_classes_or_no_decision_is_refused_in_one_line(finished_run, tmp_path, seg):
    ckpt = copy_run(finished_run, tmp_path) / "checkpoints/last.ckpt"
    other = decision_file(tmp_path / "liver.json", {"liver": (1,)}, applied=("liver",))
    refused = seg("test", "--ckpt_path", str(ckpt), "--data.test_on=val", "--postprocessing", str(other),
                  cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr[-2000:]
    assert f"seg: error: --postprocessing {other}: its classes" in refused.stderr and "organ" in refused.stderr
    (tmp_path / "junk.json").write_text("[]")
    junk = seg("predict", "--ckpt_path", str(ckpt), "--postprocessing", str(tmp_path / "junk.json"), cwd=tmp_path)
    assert junk.returncode == 2 and "not a postprocessing decision" in junk.stderr
    assert len(junk.stderr.strip().splitlines()) == 1
