"""Cross-validation (issue 20, part 1): `seg batch --folds K` trains one run per fold and ends with the CV table,
whose per-case numbers are `seg test`'s native-space scores; the table's arithmetic on its own."""

from __future__ import annotations

import csv
import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest

from segmentation.app.cv_table import MEAN_OVER_FOLDS, POOLED, SD_OVER_FOLDS, CvTable
from segmentation.data.split import stored_split
from segmentation.training.checkpointing import load_checkpoint

from ..helpers import DEMO_CONFIG, TINY_CONFIG

CLASSES = {"organ": 1, "lesion": 2}  # the demo task's label values (MSD layout)


def numpy_dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """The README's policy: both empty -> 1, otherwise 2|P & T| / (|P| + |T|)."""
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (prediction & truth).sum() / total)


@pytest.mark.slow
def test_a_3_fold_batch_trains_each_fold_apart_from_the_test_cases_and_its_cv_table_is_seg_tests_scores(
        demo_root, tmp_path, seg):
    result = seg("batch", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data", str(demo_root),
                 "--archs", "unet", "--schedulers", "none", "--epochs", "1", "--no-estimate", "--folds", "3",
                 "--name", "cv", "--", "--data.init_args.test_fraction=0.17", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    runs = {k: tmp_path / f"lightning_logs/demo_unet_none_fold{k}/version_0" for k in range(3)}
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == [
        "batches", "demo_unet_none_fold0", "demo_unet_none_fold1", "demo_unet_none_fold2"]
    splits = {k: stored_split(load_checkpoint(run / "checkpoints/best.ckpt")) for k, run in runs.items()}
    test = set(splits[0].test)
    assert len(test) == 1 and all(set(s.test) == test for s in splits.values())
    for split in splits.values():
        assert not test & (set(split.train) | set(split.val)) and split.val and split.train
    validated = sorted(case for split in splits.values() for case in split.val)
    assert validated == sorted({p.name.split(".nii")[0] for p in (demo_root / "imagesTr").iterdir()} - test)

    with open(tmp_path / "lightning_logs/batches/cv/demo_unet_none_cv.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    per_case = [row for row in rows if row["fold"] != "all" and row["case"] != "mean"]
    assert sorted(row["case"] for row in per_case) == validated  # each case once, by the fold that held it out
    for k, run in runs.items():  # seg predict's files of that fold's validation cases, scored with numpy
        images = [str(demo_root / "imagesTr" / f"{case}.nii.gz") for case in splits[k].val]
        out = tmp_path / f"predicted{k}"
        assert seg("predict", "--ckpt_path", str(run / "checkpoints/best.ckpt"),
                   f"--data.predict_images=[{','.join(images)}]", f"--prediction_dir={out}",
                   cwd=tmp_path).returncode == 0
        for case in splits[k].val:
            predicted = np.asanyarray(nib.load(out / f"{case}.nii.gz").dataobj)
            kept = np.asanyarray(nib.load(run / "cv/predictions" / f"{case}.nii.gz").dataobj)
            assert np.array_equal(predicted, kept)  # the label maps kept in the fold's run dir are seg predict's
            truth = np.rint(np.asanyarray(nib.load(demo_root / "labelsTr" / f"{case}.nii.gz").dataobj))
            row = next(r for r in per_case if r["case"] == case)
            assert row["fold"] == str(k)
            for name, value in CLASSES.items():
                assert float(row[f"dice/{name}"]) == pytest.approx(numpy_dice(predicted == value, truth == value),
                                                                    abs=1e-6), (case, name)
    pooled = next(row for row in rows if row["case"] == POOLED)
    assert float(pooled["dice/organ"]) == pytest.approx(np.mean([float(r["dice/organ"]) for r in per_case]))
    assert "| mean ± sd | 3 folds |" in (tmp_path / "lightning_logs/batches/cv/demo_unet_none_cv.md").read_text()
    # the postprocessing decision (part 5) on the same pooled cases: before any step, the table's pooled Dice
    decision = json.loads((tmp_path / "lightning_logs/batches/cv/demo_unet_none_postprocessing.json").read_text())
    assert [step["name"] for step in decision["steps"]] == ["foreground", "organ", "lesion"]
    assert decision["cases"] == 5 and decision["classes"] == {"organ": [1], "lesion": [2]}
    assert decision["steps"][0]["dice_before"] == pytest.approx(
        np.mean([float(pooled["dice/organ"]), float(pooled["dice/lesion"])]), abs=1e-6)

    # on demand, by run name: the scores are reused (no fold re-scored), the same table printed
    again = seg("report", "--cv", "demo_unet_none", "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert again.returncode == 0 and "| pooled | 5 |" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    assert "scoring" not in again.log
    assert "postprocessing (keep the largest component, pooled over 5 validation cases):" in again.stdout
    assert "  organ (1): " in again.stdout and (tmp_path / "again/demo_unet_none_postprocessing.json").is_file()
    assert (tmp_path / "again/demo_unet_none_cv.csv").read_text() == (
        tmp_path / "lightning_logs/batches/cv/demo_unet_none_cv.csv").read_text()

    shutil.rmtree(runs[1].parent)  # a batch run again continues from its state: the missing fold trains anew
    resumed = seg("batch", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), "--data", str(demo_root),
                  "--archs", "unet", "--schedulers", "none", "--epochs", "1", "--no-estimate", "--folds", "3",
                  "--name", "cv", "--", "--data.init_args.test_fraction=0.17", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "=== unet_none_fold1 (start) ===" in resumed.stdout and "=== unet_none_fold0" not in resumed.stdout


@pytest.mark.unit
def test_the_cv_table_means_per_fold_across_folds_and_pooled():
    table = CvTable({0: [{"case": "a", "dice/x": "1.0", "hd95/x": "2.0"}, {"case": "b", "dice/x": "0.5",
                                                                           "hd95/x": "nan"}],
                     1: [{"case": "c", "dice/x": "0.0", "hd95/x": "4.0"}]})
    rows = {(str(r["fold"]), r["case"]): r for r in table.csv_rows()}
    assert rows[("0", "mean")]["dice/x"] == 0.75 and rows[("0", "mean")]["hd95/x"] == 2.0  # HD95 where defined
    assert rows[("all", MEAN_OVER_FOLDS)]["dice/x"] == pytest.approx(0.375)
    assert rows[("all", SD_OVER_FOLDS)]["dice/x"] == pytest.approx(math.sqrt(2 * 0.375 ** 2))  # sample sd
    assert rows[("all", POOLED)]["dice/x"] == pytest.approx(0.5) and rows[("all", POOLED)]["hd95/x"] == 3.0
    assert "| mean ± sd | 2 folds | 0.3750 ± 0.5303 | 3.0000 ± 1.4142 |" in table.markdown()


def test_bad_cv_options_are_one_line_refusals_naming_the_option(tmp_path, seg):
    one = seg("batch", "--config", str(DEMO_CONFIG), "--folds", "1", cwd=tmp_path)
    assert one.returncode == 2 and "seg: error: --folds 1: cross-validation needs 2 or more folds" in one.stderr
    nothing = seg("report", "--cv", "no_such_batch", cwd=tmp_path)
    assert nothing.returncode == 2 and "seg: error: --cv no_such_batch: no batch" in nothing.stderr
    assert len(nothing.stderr.strip().splitlines()) == 1 and not (tmp_path / "lightning_logs").exists()
