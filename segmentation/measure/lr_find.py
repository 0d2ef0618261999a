"""The LR range test's suggestion (pure numpy), and the short run that measures the curve (Lightning's Tuner).

The rule over the finder's (lr, loss) arrays, one loss per optimizer step, the LR rising exponentially:

1. the curve ends at the first loss that is not finite, or where the smoothed loss passes `DIVERGED` x its lowest
   value so far (after the burn-in): the loss diverged;
2. the loss is smoothed by an exponential moving average (`BETA`), run forward and then backward so that the
   smoothed curve does not lag behind the LR;
3. the first `BURN_IN` of the steps (at least one) are skipped: an early spike is the network's first steps, not
   the LR's doing (Lightning's steepest-slope suggestion is tricked by one: Lightning issue #1767);
4. the suggestion is the LR of the steepest descent of the smoothed loss against log10(LR), between the burn-in
   and the smoothed minimum (before the divergence);
5. the minimum's LR / 10 is the cross-check (said whether the two agree within a factor 10) and the fallback,
   taken when the curve before the divergence has fewer than `MIN_CURVE` points, fewer than `MIN_WINDOW` lie
   between the burn-in and the minimum, or the loss never descends there. No finite loss at all is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..core.errors import SegError

BETA = 0.9  # the smoothing's weight on the past (an average over ~10 steps)
BURN_IN = 0.1  # the share of the steps skipped at the start
DIVERGED = 4.0  # the smoothed loss this many times its lowest value so far: diverged (Lightning's threshold too)
MIN_WINDOW = 3  # points between the burn-in and the minimum that a slope needs
MIN_CURVE = 8  # points before the divergence that a steepest descent needs (fewer: the fallback)
AGREE = 10.0  # the steepest descent and the minimum/10 agree within this factor


def smoothed(losses: np.ndarray, beta: float = BETA) -> np.ndarray:
    """The exponential moving average of `losses` (bias-corrected), run forward and then backward over the result:
    no lag behind the LR."""
    def ema(values: np.ndarray) -> np.ndarray:
        out, average = np.empty(len(values)), 0.0
        for index, value in enumerate(values):
            average = beta * average + (1 - beta) * value
            out[index] = average / (1 - beta ** (index + 1))
        return out

    values = np.asarray(losses, dtype=float)
    return ema(ema(values)[::-1])[::-1] if len(values) else values


def divergence_index(losses: np.ndarray, burn_in: int, beta: float = BETA) -> Optional[int]:
    """The index where the curve diverged: its first non-finite loss, or the first point after the burn-in where
    the (forward, causal) smoothed loss exceeds `DIVERGED` x its lowest value so far; None when it never did."""
    values = np.asarray(losses, dtype=float)
    finite = np.isfinite(values)
    end = int(np.argmin(finite)) if not finite.all() else len(values)
    average, lowest = 0.0, math.inf
    for index in range(end):
        average = beta * average + (1 - beta) * values[index]
        level = average / (1 - beta ** (index + 1))
        if index >= burn_in:
            if level > DIVERGED * lowest and lowest > 0:
                return index
            lowest = min(lowest, level)
    return None if end == len(values) else end


@dataclass
class Suggestion:
    """The suggested LR, how it was chosen, and what the plot and the JSON show."""

    lr: float
    rule: str  # "steepest descent" or "minimum/10"
    steepest_lr: Optional[float]
    minimum_lr: float
    burn_in: int
    diverged_at: Optional[int]  # index of the first point past the divergence (None: never diverged)
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)  # over the curve before the divergence
    notes: list[str] = field(default_factory=list)

    @property
    def minimum_over_10(self) -> float:
        """The cross-check: the smoothed minimum's LR / 10."""
        return self.minimum_lr / 10

    def agree(self) -> Optional[bool]:
        """Whether the steepest descent and the minimum/10 lie within a factor `AGREE` (None: no steepest descent)."""
        if self.steepest_lr is None:
            return None
        return abs(math.log10(self.steepest_lr / self.minimum_over_10)) <= math.log10(AGREE)

    def lines(self) -> list[str]:
        """What the command prints about the choice."""
        steepest = f"{self.steepest_lr:.3g}" if self.steepest_lr is not None else "none"
        agreement = {True: "they agree within 10x", False: "they differ by more than 10x: look at the plot",
                     None: "no steepest descent to compare"}[self.agree()]
        diverged = (f"diverged at LR {self.lrs[self.diverged_at]:.3g} (step {self.diverged_at})"
                    if self.diverged_at is not None else "did not diverge up to the largest LR swept")
        return [f"suggested LR: {self.lr:.3g} ({self.rule})",
                f"  steepest descent of the smoothed loss: {steepest}; smoothed minimum at {self.minimum_lr:.3g}, "
                f"/10 = {self.minimum_over_10:.3g}: {agreement}",
                f"  {len(self.lrs)} steps from {self.lrs[0]:.3g} to {self.lrs[-1]:.3g}, the first {self.burn_in} "
                f"skipped (burn-in); the loss {diverged}", *(f"  {note}" for note in self.notes)]

    def as_dict(self) -> dict[str, Any]:
        """The JSON beside the plot."""
        def number(value: Optional[float]) -> Optional[float]:
            return float(value) if value is not None and math.isfinite(value) else None

        return {"suggestion": self.lr, "rule": self.rule, "steepest_lr": self.steepest_lr,
                "minimum_lr": self.minimum_lr, "minimum_over_10": self.minimum_over_10, "burn_in": self.burn_in,
                "diverged_at": self.diverged_at, "lr": [number(v) for v in self.lrs],
                "loss": [number(v) for v in self.losses], "smoothed": [number(v) for v in self.smoothed],
                "notes": self.notes}


def suggest(lrs: Any, losses: Any) -> Suggestion:
    """The suggested LR of an LR range test's (lr, loss) curve, by the rule in this module's docstring; a SegError
    when no loss is finite."""
    lr = np.asarray(lrs, dtype=float)
    loss = np.asarray(losses, dtype=float)
    if len(lr) != len(loss) or len(lr) == 0:
        raise SegError(f"the LR range test recorded {len(lr)} LRs and {len(loss)} losses: nothing to suggest from")
    burn_in = max(1, round(BURN_IN * len(lr)))
    end = divergence_index(loss, burn_in)
    end = len(lr) if end is None else end
    if end == 0:
        raise SegError("the LR range test's first loss is not finite: lower --min-lr (or check the data)")
    smooth = smoothed(loss[:end])
    notes: list[str] = []
    if burn_in >= end:  # diverged within the burn-in: what there is, from the start
        notes.append(f"the loss diverged within the burn-in ({end} steps): no burn-in skipped; lower --max-lr")
        burn_in = 0
    minimum = burn_in + int(np.argmin(smooth[burn_in:]))
    window = slice(burn_in, minimum + 1)
    steepest_lr = None
    if end >= MIN_CURVE and minimum + 1 - burn_in >= MIN_WINDOW:
        slopes = np.gradient(smooth[window], np.log10(lr[window]))
        if slopes.min() < 0:
            steepest_lr = float(lr[burn_in + int(np.argmin(slopes))])
    if steepest_lr is not None:
        chosen, rule = steepest_lr, "steepest descent"
    else:
        chosen, rule = float(lr[minimum]) / 10, "minimum/10"
        why = (f"{end} point(s) before the divergence, fewer than {MIN_CURVE}" if end < MIN_CURVE else
               f"{minimum + 1 - burn_in} point(s) between the burn-in and the minimum (a slope needs {MIN_WINDOW}) "
               f"or no descent there")
        notes.append(f"fallback to the minimum/10: {why}" + ("; run more --steps" if len(lr) < 30 else ""))
        if chosen < lr[0]:
            notes.append(f"the minimum/10 ({chosen:.3g}) lies below the swept range: the smallest LR swept is "
                         f"suggested; lower --min-lr to measure below it")
            chosen = float(lr[0])
    return Suggestion(chosen, rule, steepest_lr, float(lr[minimum]), burn_in,
                      end if end < len(lr) else None, lr.tolist(), loss.tolist(), smooth.tolist(), notes)


def naive_steepest(lrs: Any, losses: Any) -> float:
    """Lightning's own suggestion (the steepest slope of the loss it records, over the whole curve): the rule that
    an early spike tricks, kept for comparison in tests and the docs."""
    lr, loss = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    return float(lr[int(np.argmin(np.gradient(loss)))])
