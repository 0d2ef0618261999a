"""`seg test|predict --ckpt_path A --ensemble B [--tta flips]` end to end, on a two-fold cross-validation of the
demo data (the test split carved before the folds)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from segmentation.data.synthetic import write
from segmentation.model.ensemble import VolumeInference
from segmentation.training.ensembles import member_module

from ..helpers import REPO, seg_in_process, tiny_fit_args


@pytest.fixture(scope="module")
def folds(demo_root, tmp_path_factory) -> list[Path]:
    """The last checkpoints of folds 0 and 1 of a 2-fold CV (one epoch each; 2 of the 6 cases held out as test)."""
    work = tmp_path_factory.mktemp("folds")
    found = []
    for fold in (0, 1):
        out = work / f"fold{fold}"
        out.mkdir()
        args = tiny_fit_args(demo_root, "--trainer.max_epochs=1", "--data.test_fraction=0.34", "--data.num_folds=2",
                             f"--data.fold={fold}", f"--seed_everything={fold}")
        assert seg_in_process(args, cwd=out) == 0
        found.append(next(out.glob("lightning_logs/*/version_0/checkpoints/last.ckpt")))
    return found


def split_of(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["MSDDataModule"]


def test_an_ensemble_of_one_checkpoint_twice_predicts_what_the_model_alone_does(folds, demo_root, tmp_path, seg):
    twin = tmp_path / "twin.ckpt"
    shutil.copy(folds[0], twin)
    images = f"--data.predict_images={json.dumps([str(demo_root / 'imagesTr' / f'demo_00{i}.nii.gz') for i in (0, 1)])}"
    single = seg("predict", "--ckpt_path", str(folds[0]), images, "--prediction_dir=single", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    both = seg("predict", "--ckpt_path", str(folds[0]), "--ensemble", str(twin), images, "--prediction_dir=both",
               cwd=tmp_path)
    assert both.returncode == 0, both.stderr[-2000:]
    assert f"seg predict: an ensemble of 2 models, no TTA ({folds[0]}, {twin})" in both.log
    names = sorted(p.name for p in (tmp_path / "single").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "both").iterdir()) and len(names) == 2
    for name in names:
        assert np.array_equal(np.asarray(nib.load(tmp_path / "single" / name).dataobj),
                              np.asarray(nib.load(tmp_path / "both" / name).dataobj))


def test_fold_ensemble_probabilities_are_their_mean_and_differ_from_each(folds):
    models = [member_module(torch.load(ckpt, map_location="cpu", weights_only=False)) for ckpt in folds]
    image = torch.randn((1, 1, 24, 24, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        each = [VolumeInference()(model, image) for model in models]
        both = VolumeInference(models[1:])(models[0], image)
    assert torch.allclose(both, (each[0] + each[1]) / 2, atol=1e-6)
    assert all((both - one).abs().max() > 1e-3 for one in each)


def test_seg_test_scores_a_fold_ensemble_with_tta_on_the_test_split_only(folds, tmp_path, seg):
    splits = [split_of(ckpt) for ckpt in folds]
    assert splits[0]["test"] == splits[1]["test"] and splits[0]["val"] != splits[1]["val"]
    result = seg("test", "--ckpt_path", str(folds[0]), str(folds[1]), "--tta", "flips", "--tta_axes", "0", "2",
                 cwd=tmp_path)  # (--ckpt_path A B: --ckpt_path A --ensemble B)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "an ensemble of 2 models, mirror TTA over 4 flips" in result.log
    table = folds[0].parent.parent / "test" / "last.ensemble2.tta4.csv"
    rows = list(csv.DictReader(table.open()))
    assert [row["case"] for row in rows] == [*splits[0]["test"], "mean"]
    assert not (folds[0].parent.parent / "test" / "last.csv").exists()  # (one model's table is another file)

    refused = seg("test", "--ckpt_path", str(folds[0]), "--ensemble", str(folds[1]), "--data.test_on=val",
                  cwd=tmp_path)
    assert refused.returncode == 2
    assert "scores no case a model has seen (val split)" in refused.stderr
    trained_by_fold1 = ", ".join(splits[0]["val"])  # fold 0's validation cases are fold 1's training cases
    assert f"{folds[1]} trained or validated on {trained_by_fold1}" in refused.stderr
    assert str(folds[0]) in refused.stderr
    single = seg("test", "--ckpt_path", str(folds[0]), "--data.test_on=val", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]  # one model on its own validation cases: still allowed


def test_seg_test_averages_brats_regions_of_an_ensemble_under_tta(tmp_path, seg):
    """Sigmoid regions (TC/WT/ET): the probabilities of 2 checkpoints x 8 flips averaged, thresholded, scored."""
    root = write("brats", tmp_path / "brats", cases=6, shape=(32, 32, 32), seed=0)
    fit = ["fit", "--config", str(REPO / "configs/brats.yaml"), "--config", str(REPO / "configs/fragments/smoke.yaml"),
           f"--data.init_args.root={root}", "--data.test_fraction=0.34", "--trainer.max_epochs=1"]
    assert seg(*fit, cwd=tmp_path).returncode == 0
    checkpoints = next(tmp_path.glob("lightning_logs/*/version_0/checkpoints"))
    result = seg("test", "--ckpt_path", str(checkpoints / "last.ckpt"), str(checkpoints / "best.ckpt"), "--tta",
                 "flips", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "an ensemble of 2 models, mirror TTA over 8 flips" in result.log
    rows = list(csv.DictReader((checkpoints.parent / "test" / "last.ensemble2.tta8.csv").open()))
    assert [row["case"] for row in rows] == [*split_of_brats(checkpoints / "last.ckpt"), "mean"]
    assert {"dice/tc", "dice/wt", "dice/et"} <= set(rows[0])


def split_of_brats(ckpt: Path) -> list[str]:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["BraTSDataModule"]["test"]
