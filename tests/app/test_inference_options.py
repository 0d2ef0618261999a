"""`seg test|predict`'s ensemble options as typed: `--ckpt_path A B C` is `--ckpt_path A --ensemble B C`."""

from __future__ import annotations

import pytest

from segmentation.app.inference_options import InferenceOptions, with_ensemble_from_ckpt_paths
from segmentation.core.errors import SegError

pytestmark = pytest.mark.unit


def test_several_checkpoints_after_ckpt_path_are_an_ensemble():
    argv = ["test", "--ckpt_path", "a.ckpt", "b.ckpt", "c.ckpt", "--tta", "flips"]
    assert with_ensemble_from_ckpt_paths(argv) == ["test", "--ckpt_path", "a.ckpt", "--ensemble", "b.ckpt", "c.ckpt",
                                                   "--tta", "flips"]
    for unchanged in (["predict", "--ckpt_path", "a.ckpt", "--ensemble", "b.ckpt"], ["fit", "--ckpt_path", "a", "b"],
                      ["test", "--ckpt_path", "a.ckpt"], ["predict", "--config", "x.yaml"]):
        assert with_ensemble_from_ckpt_paths(unchanged) == unchanged  # (fit's stray word: LightningCLI refuses it)
    with pytest.raises(SegError, match="not both"):
        with_ensemble_from_ckpt_paths(["test", "--ckpt_path", "a", "b", "--ensemble", "c"])


def test_the_results_file_of_an_ensemble_or_tta_is_not_the_single_models():
    assert InferenceOptions().suffix() == ""
    assert InferenceOptions(members=[("b", {}), ("c", {})], flips=[(), (2,)]).suffix() == ".ensemble3.tta2"
