"""`seg export --postprocessing`: the decision's applied steps in contract.json, applied by predict.py (no SciPy)
exactly as `apply_postprocessing` applies them."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from segmentation.export import standalone, standalone_components
from segmentation.export.contract import postprocessing_steps
from segmentation.export.writer import load_datamodule
from segmentation.model.postprocessing import FOREGROUND, Postprocessing, Step, apply_postprocessing, largest_component
from segmentation.training.checkpointing import load_checkpoint

CLASSES = {"liver": (1,), "tumour": (2,)}
REGIONS = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}


def predictor_postprocess():
    """predict.py's `postprocess`, read from the file seg export copies (run as a script module, not imported)."""
    return runpy.run_path(standalone.__file__, run_name="predict_py")["postprocess"]


def islands() -> np.ndarray:
    """A label map with a big object of classes 1 and 2, islands of each class (one touching only by an edge),
    and a class-2 island inside class 1 (cut off from the big class-2 part)."""
    labels = np.zeros((20, 18, 16), dtype=np.int64)
    labels[2:12, 2:12, 2:12] = 1
    labels[6:10, 6:10, 6:14] = 2
    labels[3:5, 3:5, 3:5] = 2  # a class-2 island inside class 1
    labels[15:18, 14:17, 1:4] = 1  # a class-1 island
    labels[12, 12, 5] = 2  # touches the big object only diagonally (edge): a separate 6-component
    labels[17:19, 1:3, 12:15] = 2  # a class-2 island
    return labels


@pytest.mark.unit
@pytest.mark.parametrize("classes,applied", [
    (CLASSES, [FOREGROUND]),
    (CLASSES, ["tumour"]),
    (CLASSES, [FOREGROUND, "liver", "tumour"]),
    (REGIONS, ["WT", "ET"]),
])
def test_the_predictors_postprocessing_is_seg_predicts(classes, applied):
    union = tuple(sorted({v for values in classes.values() for v in values}))
    candidates = [Step(FOREGROUND, union), *(Step(name, values) for name, values in classes.items())]
    decision = Postprocessing(classes, [Step(s.name, s.values, s.name in applied, 0.5, 0.6) for s in candidates], 3)
    steps = postprocessing_steps(decision)
    assert [step["name"] for step in steps] == applied
    labels = islands() if classes is CLASSES else np.where(islands() == 2, 4, islands())
    ours = predictor_postprocess()(labels.copy(), json.loads(json.dumps(steps)))
    expected = apply_postprocessing(labels.copy(), decision)
    assert not np.array_equal(expected, labels)  # the steps removed something
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.unit
def test_the_predictors_components_are_scipys_on_random_masks():
    largest = standalone_components.largest_component  # (what predict.py imports from beside it)
    rng = np.random.default_rng(0)
    for _ in range(100):
        shape = tuple(int(n) for n in rng.integers(1, 10, size=3))
        mask = rng.random(shape) < rng.uniform(0.1, 0.7)
        np.testing.assert_array_equal(largest(mask), largest_component(mask))  # (equal sizes: the first in scan order)


def decision_file(folder: Path, classes: dict, applied: list[str]) -> Path:
    steps = [Step(name, values, name in applied, 0.5, 0.6) for name, values in classes.items()]
    path = folder / "fold_postprocessing.json"
    path.write_text(Postprocessing(dict(classes), steps, 4).to_json())
    return path


def test_seg_export_writes_the_decisions_applied_steps_into_the_contract(finished_run, tmp_path, seg):
    ckpt = finished_run / "checkpoints" / "best.ckpt"
    classes = load_datamodule(load_checkpoint(ckpt), ckpt, None).class_values()
    first, second = list(classes)
    path = decision_file(tmp_path, classes, [second])
    result = seg("export", "--ckpt_path", str(ckpt), "--out", "exported", "--postprocessing", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    contract = json.loads((tmp_path / "exported" / "contract.json").read_text())
    assert contract["postprocessing"] == [{"name": second, "values": list(classes[second]), "keep": "largest component",
                                           "connectivity": 6}]
    assert (tmp_path / "exported" / "predict.py").read_text() == Path(standalone.__file__).read_text()

    other = decision_file(tmp_path, {first: classes[first], second: (7,)}, [first])
    result = seg("export", "--ckpt_path", str(ckpt), "--out", "refused", "--postprocessing", str(other), cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("seg: error:"), result.stderr
    assert "are not the model's" in lines[0] and not (tmp_path / "refused").exists()

    result = seg("export", "--ckpt_path", str(ckpt), "--out", "x", "--postprocessing", "missing.json", cwd=tmp_path)
    assert result.returncode == 2 and "--postprocessing missing.json: cannot be read" in result.stderr
