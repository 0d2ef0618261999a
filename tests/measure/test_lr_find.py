"""The LR range test's suggestion rule (measure.lr_find) on constructed curves: no Trainer, no process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segmentation.core.errors import SegError
from segmentation.measure.lr_find import naive_steepest, smoothed, suggest

pytestmark = pytest.mark.unit
STEPS = 100
LRS = np.logspace(-6, 0, STEPS)


def valley(lrs: np.ndarray, centre: float = 3e-3, diverge_at: float | None = 0.1) -> np.ndarray:
    """A loss of 2 that falls to 0.5 around `centre` (steepest there, on a log axis), then climbs steeply past
    `diverge_at`."""
    x = np.log10(lrs)
    loss = 0.5 + 1.5 / (1 + np.exp(3 * (x - math.log10(centre))))
    if diverge_at is not None:
        loss = loss + np.where(lrs > diverge_at, 40 * (x - math.log10(diverge_at)) ** 2, 0.0)
    return loss


def decades(a: float, b: float) -> float:
    return abs(math.log10(a / b))


def test_a_clean_valley_gives_its_steepest_descent():
    found = suggest(LRS, valley(LRS))
    assert found.rule == "steepest descent" and decades(found.lr, 3e-3) < 0.2, found.lines()
    assert found.diverged_at is not None and LRS[found.diverged_at] > 0.1  # cut where it climbed past 4x
    assert found.agree() is True and LRS[0] <= found.lr <= LRS[-1]
    assert len(found.smoothed) == found.diverged_at  # smoothed over the curve before the divergence only


def test_a_noisy_early_spike_fools_the_naive_slope_but_not_the_rule():
    noise = np.random.default_rng(0).normal(0, 0.03, STEPS)
    loss = valley(LRS) + noise
    loss[3] += 6.0  # the first steps of an untrained network: a spike, then a steep fall back
    naive = naive_steepest(LRS, loss)
    assert decades(naive, LRS[4]) < 0.1  # Lightning #1767: the fall after the spike is the steepest slope
    found = suggest(LRS, loss)
    assert found.rule == "steepest descent" and decades(found.lr, 3e-3) < 0.3, found.lines()


def test_a_spike_after_the_burn_in_is_smoothed_away():
    loss = valley(LRS)
    loss[20] += 3.0  # one step, past the burn-in: the average over ~10 steps flattens it
    found = suggest(LRS, loss)
    assert decades(found.lr, 3e-3) < 0.3, found.lines()


def test_a_curve_that_never_diverges_takes_the_steepest_descent_before_its_minimum():
    found = suggest(LRS, valley(LRS, diverge_at=None))
    assert found.diverged_at is None and found.rule == "steepest descent"
    assert decades(found.lr, 3e-3) < 0.2
    assert any("did not diverge" in line for line in found.lines())


def test_a_non_finite_loss_ends_the_curve():
    loss = valley(LRS, diverge_at=None)
    loss[70:] = np.nan
    found = suggest(LRS, loss)
    assert found.diverged_at == 70 and decades(found.lr, 3e-3) < 0.2


def test_a_too_short_curve_falls_back_to_the_minimum_over_10_and_says_so():
    lrs = np.logspace(-4, -1, 4)
    found = suggest(lrs, [2.0, 1.0, 0.9, 0.8])
    assert found.rule == "minimum/10" and math.isclose(found.lr, lrs[-1] / 10)
    assert any("fallback to the minimum/10" in note and "--steps" in note for note in found.notes)


def test_a_loss_that_only_rises_falls_back_within_the_swept_range():
    lrs = np.logspace(-6, 0, 30)
    found = suggest(lrs, np.linspace(1.0, 3.0, 30))
    assert found.rule == "minimum/10" and found.lr == lrs[0]
    assert any("below the swept range" in note for note in found.notes)


def test_no_finite_loss_is_refused():
    with pytest.raises(SegError, match="first loss is not finite: lower --min-lr"):
        suggest(LRS[:5], [float("nan")] * 5)
    with pytest.raises(SegError, match="nothing to suggest"):
        suggest([], [])


def test_the_smoothing_does_not_lag():
    steps = np.r_[np.full(50, 2.0), np.full(50, 1.0)]
    smooth = smoothed(steps)
    assert abs(smooth[49] + smooth[50] - 3.0) < 0.05  # centred on the step, not shifted to its right


def test_the_json_holds_the_arrays_and_the_choice():
    found = suggest(LRS, valley(LRS)).as_dict()
    assert len(found["lr"]) == len(found["loss"]) == STEPS and found["suggestion"] > 0
    assert {"smoothed", "rule", "minimum_over_10", "burn_in", "diverged_at"} <= set(found)
