"""Keep-the-largest-component postprocessing: nnU-Net's decision on pooled cases, its application, its JSON."""

import numpy as np
import pytest
import torch

from segmentation.core.errors import SegError
from segmentation.model.postprocessing import (
    FOREGROUND,
    Postprocessing,
    apply_postprocessing,
    apply_to_tensor,
    class_dice,
    decide_postprocessing,
    keep_largest,
    largest_component,
)

CLASSES = {"liver": (1,), "tumour": (2,)}


def synthetic_case(island: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: one true blob, predicted with a spurious island (LCC helps). Class 2: two true components, both
    predicted (LCC hurts)."""
    truth = np.zeros((20, 20, 20), dtype=np.uint8)
    truth[2:8, 2:8, 2:8] = 1
    truth[12:16, 12:16, 12:16] = 2
    truth[12:14, 2:4, 12:14] = 2
    prediction = truth.copy()
    if island:
        prediction[17:19, 17:19, 2:4] = 1
    return prediction, truth


def test_largest_component_is_six_connected():
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[0:2, 0:2, 0:2] = True
    mask[2, 2, 2] = True  # touches the cube only at a corner: its own component
    kept = largest_component(mask)
    assert kept.sum() == 8 and not kept[2, 2, 2]


def test_the_island_is_removed_where_it_helps_and_the_second_true_component_kept():
    cases = [synthetic_case(), synthetic_case(), synthetic_case(island=False)]
    decision = decide_postprocessing(cases, CLASSES)
    steps = {step.name: step for step in decision.steps}
    assert [step.name for step in decision.steps] == [FOREGROUND, "liver", "tumour"]
    assert not steps[FOREGROUND].applied  # the union's largest component drops the tumour
    assert steps["liver"].applied and steps["liver"].dice_after > steps["liver"].dice_before
    assert not steps["tumour"].applied and steps["tumour"].dice_after < steps["tumour"].dice_before
    prediction, truth = synthetic_case()
    fixed = apply_postprocessing(prediction, decision)
    assert class_dice(fixed, truth, (1,)) == 1.0 > class_dice(prediction, truth, (1,))
    assert np.array_equal(fixed == 2, truth == 2)  # both true tumour components left alone


def test_no_gain_is_not_applied():
    decision = decide_postprocessing([synthetic_case(island=False)] * 2, CLASSES)
    assert decision.applied() == [] and decision.describe() == "nothing applied"


def test_loaders_read_lazily_and_a_single_class_has_no_foreground_step():
    calls = []

    def load():
        calls.append(1)
        return synthetic_case()

    decision = decide_postprocessing([load, load], {"liver": (1,)})
    assert [step.name for step in decision.steps] == ["liver"] and decision.applied()[0].name == "liver"
    assert len(calls) == 2  # one pass


def test_overlapping_regions_are_judged_one_after_another():
    """BraTS-like regions: the WT step removes a whole-tumour island with its ET voxels, and ET is judged after it."""
    regions = {"tc": (1, 4), "wt": (1, 2, 4), "et": (4,)}
    truth = np.zeros((16, 16, 16), dtype=np.uint8)
    truth[2:10, 2:10, 2:10] = 2
    truth[4:8, 4:8, 4:8] = 1
    truth[5:7, 5:7, 5:7] = 4
    prediction = truth.copy()
    prediction[12:15, 12:15, 12:15] = 2
    prediction[13, 13, 13] = 4  # an island of edema with an enhancing voxel
    decision = decide_postprocessing([(prediction, truth)], regions)
    fixed = apply_postprocessing(prediction, decision)
    assert np.array_equal(fixed, truth)
    assert {step.name for step in decision.applied()} & {FOREGROUND, "wt"}


def test_keep_largest_sets_the_rest_to_background_only_for_its_values():
    labels = np.array([[[1, 0, 1, 1, 2, 0, 2]]])
    assert keep_largest(labels, (1,)).tolist() == [[[0, 0, 1, 1, 2, 0, 2]]]


def test_the_decision_round_trips_through_json_and_applies_to_tensors():
    decision = decide_postprocessing([synthetic_case(), synthetic_case(island=False)], CLASSES)
    again = Postprocessing.from_json(decision.to_json())
    assert again == decision
    prediction, _ = synthetic_case()
    tensor = torch.as_tensor(prediction[None]).long()
    assert torch.equal(apply_to_tensor(tensor, again), torch.as_tensor(apply_postprocessing(prediction[None],
                                                                                            decision)).long())
    assert "liver (1): applied" in "\n".join(again.lines())


def test_a_file_that_is_not_a_decision_is_refused():
    with pytest.raises(SegError, match="pp.json: not a postprocessing decision"):
        Postprocessing.from_json('{"classes": 3}', "pp.json")
