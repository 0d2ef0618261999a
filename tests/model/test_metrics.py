"""The Dice policy on hand-built cases, and the validation Dice of a real run against an independent computation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from segmentation.model.metrics import (
    CaseMetrics,
    dice_from_counts,
    dice_present,
    first_of_each_case,
    overlap_counts,
)

from ..helpers import dice_by_numpy, only_run_dir, tiny_fit_args, values

# a 2 x 3 label map (classes 0..3) and a prediction: class 1 partly found, class 2 predicted but absent
# from the truth, class 3 absent from both
TRUTH = [[0, 1, 1], [0, 0, 1]]
PREDICTION = [[0, 1, 2], [0, 0, 0]]


@pytest.mark.unit
def test_dice_policy_on_a_hand_built_case():
    counts = overlap_counts(torch.tensor(PREDICTION), torch.tensor(TRUTH), num_classes=4, multilabel=False)
    assert counts.tolist() == [[1, 1, 3], [0, 1, 0], [0, 0, 0]]  # (true positives, predicted, true) per class
    assert dice_from_counts(counts).tolist() == pytest.approx([2 * 1 / (1 + 3), 0.0, 1.0])
    present = dice_present(counts)
    assert present[0] == pytest.approx(0.5) and present[1:].isnan().all()


@pytest.mark.unit
def test_regions_are_scored_channel_by_channel():
    truth = torch.tensor([[[1, 1, 0]], [[0, 0, 0]], [[0, 0, 0]]], dtype=torch.bool)  # TC, WT, ET (1 x 3 voxels)
    predicted = torch.tensor([[[1, 0, 0]], [[0, 1, 0]], [[0, 0, 0]]], dtype=torch.bool)
    counts = overlap_counts(predicted, truth, num_classes=3, multilabel=True)
    assert dice_from_counts(counts).tolist() == pytest.approx([2 / 3, 0.0, 1.0])


@pytest.mark.unit
def test_a_case_repeated_by_sampler_padding_counts_once():
    indices = torch.tensor([3, 0, 3, 1])
    counts = torch.arange(4 * 2 * 3).reshape(4, 2, 3)
    kept_indices, kept = first_of_each_case(indices, counts)
    assert kept_indices.tolist() == [0, 1, 3] and torch.equal(kept, counts[[1, 3, 0]])


@pytest.mark.unit
def test_case_metrics_rows_follow_the_policy_and_hd95_needs_both_masks():
    metrics = CaseMetrics(["a", "b", "c"], multilabel=False)
    truth = torch.tensor(TRUTH)[..., None].expand(2, 3, 4)
    predicted = torch.tensor(PREDICTION)[..., None].expand(2, 3, 4)
    metrics.add("case", predicted, truth, spacing=[1.0, 1.0, 2.0])
    row = metrics.rows[0]
    assert (row["dice/a"], row["dice/b"], row["dice/c"]) == pytest.approx((0.5, 0.0, 1.0))
    assert row["hd95/a"] >= 1.0 and np.isnan(row["hd95/b"]) and np.isnan(row["hd95/c"])


def test_logged_validation_dice_is_the_mean_of_independent_per_case_values(demo_root, tmp_path, seg):
    """5 validation cases: seg predict writes each in its input's geometry (the demo's preprocessing is a pure
    reorientation, so nothing is resampled); numpy scores them against labelsTr."""
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=1", "--data.val_fraction=0.8"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run_dir(tmp_path / "lightning_logs")
    checkpoint = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    val_cases = checkpoint["MSDDataModule"]["val"]
    assert len(val_cases) == 5
    images = [str(demo_root / "imagesTr" / f"{case}.nii.gz") for case in val_cases]
    result = seg("predict", "--ckpt_path", str(run / "checkpoints/last.ckpt"),
                 f"--data.predict_images={json.dumps(images)}", "--prediction_dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    per_case = []
    for case in val_cases:
        predicted = np.asarray(nib.load(tmp_path / "out" / f"{case}.nii.gz").dataobj)
        truth = np.asarray(nib.load(demo_root / "labelsTr" / f"{case}.nii.gz").dataobj)
        per_case.append([dice_by_numpy(predicted, truth, value) for value in (1, 2)])
    expected = np.mean(np.mean(per_case, axis=0))
    assert values(run, "val/dice")[-1] == pytest.approx(expected, abs=1e-6)
    per_class = np.mean(per_case, axis=0)
    assert values(run, "val/dice/organ")[-1] == pytest.approx(per_class[0], abs=1e-6)
    assert values(run, "val/dice/lesion")[-1] == pytest.approx(per_class[1], abs=1e-6)
    assert values(run, "val/dice_fg"), "the comparison with MONAI's ignore_empty view is logged too"


@pytest.mark.unit
@pytest.mark.parametrize("shape", [(2, 5, 8, 9, 7), (1, 3, 16, 16, 4)])
def test_label_map_dice_ce_equals_monais_one_hot_dice_ce(shape):
    from monai.losses import DiceCELoss

    from segmentation.model.losses import label_map_dice_ce

    torch.manual_seed(0)
    logits = torch.randn(*shape)
    label = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]))
    label[0][label[0] == 2] = 0  # a class absent from one case
    expected = DiceCELoss(to_onehot_y=True, softmax=True)(logits, label)
    assert float(label_map_dice_ce(logits, label)) == pytest.approx(float(expected), rel=1e-5)
