"""Ensembles (`model.ensemble`, `training.ensembles`): the mean of the members' probabilities, and the checks that
keep them to models of one meaning and preprocessing, off the cases they have seen."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from segmentation.core.errors import SegError
from segmentation.model.ensemble import VolumeInference
from segmentation.model.tta import flip_sets
from segmentation.training.ensembles import EnsembleSplitGuard, disagreements, member_module, used_cases

from .test_tta import small_model, volume

pytestmark = pytest.mark.unit


def checkpoint_of(model, **data) -> dict:
    """The parts of a checkpoint an ensemble reads."""
    settings = {"_class_path": "segmentation.data.msd.MSDDataModule", "root": "data/demo", "spacing": None,
                "ct_window": [-200.0, 300.0], "seed": 0, "fold": 0, **data}
    return {"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict(),
            "datamodule_hyper_parameters": settings,
            "MSDDataModule": {"train": ["a", "b"], "val": ["c"], "test": ["d", "e"]}}


def test_an_ensemble_of_two_identical_models_is_the_single_model():
    model, image = small_model(), volume()
    with torch.no_grad():
        single = model.probabilities(model.infer_volume(image))
        twice = VolumeInference([copy.deepcopy(model)])(model, image)
        from_checkpoint = VolumeInference([member_module(checkpoint_of(model))])(model, image)
    assert torch.allclose(twice, single, atol=1e-6) and torch.allclose(from_checkpoint, single, atol=1e-6)


@pytest.mark.parametrize("flips", [None, flip_sets([0, 1])], ids=["plain", "tta"])
def test_an_ensemble_of_two_different_models_is_their_mean_and_differs_from_each(flips):
    first, second, image = small_model(seed=0), small_model(seed=1), volume()
    with torch.no_grad():
        each = [VolumeInference(flips=flips)(model, image) for model in (first, second)]
        both = VolumeInference([second], flips)(first, image)
    assert torch.allclose(both, (each[0] + each[1]) / 2, atol=1e-6)
    assert all(not torch.allclose(both, one, atol=1e-3) for one in each)
    assert torch.allclose(both.sum(dim=1), torch.ones_like(both[:, 0]), atol=1e-5)  # still probabilities


def test_members_that_disagree_on_classes_regions_or_preprocessing_are_named():
    model = small_model()
    first = checkpoint_of(model)
    assert disagreements(first, checkpoint_of(model, root="elsewhere", seed=3, fold=1)) == []  # (not preprocessing)
    other = checkpoint_of(small_model(multilabel=True), spacing=[2.0, 2.0, 2.0])
    other["hyper_parameters"]["class_names"] = ["x", "y", "z"]
    found = disagreements(first, other)
    assert [line.split(" ")[0] for line in found] == ["model.multilabel", "model.class_names", "data.spacing"]
    other = checkpoint_of(model, _class_path="segmentation.data.brats.BraTSDataModule")
    assert [line.split(" ")[0] for line in disagreements(first, other)] == ["data.class_path"]


def test_seg_test_with_an_ensemble_refuses_cases_a_model_trained_or_validated_on():
    checkpoint = checkpoint_of(small_model())
    assert used_cases(checkpoint) == {"a", "b", "c"}
    plan = SimpleNamespace(split="test", items=[{"case": "d"}, {"case": "b"}])
    trainer = SimpleNamespace(datamodule=SimpleNamespace(inference_plan=lambda stage: plan))
    guard = EnsembleSplitGuard([(Path("fold0.ckpt"), {"x"}), (Path("fold1.ckpt"), used_cases(checkpoint))])
    with pytest.raises(SegError, match=r"fold1.ckpt trained or validated on b\. ") as refusal:
        guard.on_test_start(trainer, None)
    assert "fold0.ckpt" not in str(refusal.value)
    plan.items = [{"case": "d"}, {"case": "e"}]
    guard.on_test_start(trainer, None)  # the held-out cases: no refusal
