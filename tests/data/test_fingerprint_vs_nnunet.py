"""seg's fingerprint of a synthetic dataset against nnU-Net v2's own fingerprint of the same files (the anchor
fixture `tests/measure/fixtures/nnunet/demo`, written by `benchmarks/nnunet_anchor.py`): spacings, shapes after
cropping and the relative size after cropping exactly; the foreground intensity statistics within what nnU-Net's
random sampling moves them (it draws 10^8 / cases voxels per case with replacement; seg keeps up to 10,000
per case, deterministically: docs/planning.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation.data.checks import check_dataset
from segmentation.data.fingerprint import dataset_fingerprint
from segmentation.data.layouts.msd import read_dataset_json, training_cases
from segmentation.data.synthetic import write

from ..measure.nnunet_fixtures import load_fixture


@pytest.mark.unit
def test_the_demo_fingerprint_is_nnunets(tmp_path):
    fixture = load_fixture("demo")
    assert fixture["source"]["seg_synth"].startswith("seg synth demo") and "--cases 12 --shape 48 48 48 --seed 0" in \
        fixture["source"]["seg_synth"]
    root = write("demo", tmp_path / "demo", cases=12, shape=(48, 48, 48), seed=0)
    cases = training_cases(root, read_dataset_json(root, kind="demo"))
    report = check_dataset(cases, {0, 1, 2}, tmp_path / "cache", 1)
    assert not report.problems
    ours = dataset_fingerprint(report, ["CT"], ["CT"])
    np.testing.assert_allclose(ours.spacings(), fixture["case_spacings"], rtol=1e-5)
    assert ours.cropped_shapes().tolist() == fixture["case_shapes_after_crop"]
    assert ours.median_relative_size_after_cropping == pytest.approx(fixture["median_relative_size_after_cropping"])
    theirs, mine = fixture["intensity"][0], ours.intensity[0]
    sd = theirs["std"]
    for key in ("mean", "median", "percentile_00_5", "percentile_99_5"):
        assert abs(mine[key] - theirs[key]) < 0.1 * sd, (key, mine[key], theirs[key])
    assert mine["std"] == pytest.approx(sd, rel=0.05)
    print(json.dumps({"seg": {k: mine[k] for k in theirs}, "nnU-Net": theirs}))
