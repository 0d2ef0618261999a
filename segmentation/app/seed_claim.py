"""The seed document's claim on the user's own data: did one schedule for N epochs match another for 2N?

The seed design cut its batches from 100 epochs at a constant LR to 50 with `reduce_on_plateau`, saying quality
holds. `seg report ... --claim reduce_on_plateau none` answers that for the runs given, in one sentence per pair of
groups (`seed_groups.Paired`) of the two schedules on common seeds.

"Matched" means: the mean over the common seeds of the paired difference of best val/dice (the claimed schedule
minus the other) is no further from 0 than one pooled sd of the seeds' spread (sqrt of the mean of the two groups'
sample variances) — a difference no larger than changing the seed alone makes. A mean difference above +1 sd is
"matched, and better"; below -1 sd "did not match"; fewer than 2 common seeds measure no spread: "undecided".
(A 95% interval of the paired difference would say "matched" to nearly anything with 3 seeds: t = 4.3.)
"""

from __future__ import annotations

import math

from ..core.errors import SegError
from .seed_groups import Paired, figure, mean_sd

MATCHED, BETTER, SHORT, UNDECIDED = "matched", "better", "short", "undecided"


def verdict(difference: float, spread: float, seeds: int) -> str:
    """MATCHED, BETTER, SHORT or UNDECIDED for a mean paired difference and the pooled sd over `seeds` seeds."""
    if seeds < 2 or math.isnan(spread):
        return UNDECIDED
    if difference > spread:
        return BETTER
    return SHORT if difference < -spread else MATCHED


def claim_sentence(pair: Paired, claimed: str) -> str:
    """One sentence: whether `claimed` (one of the pair's schedules) matched the other within the seeds' spread."""
    ours, theirs = (pair.first, pair.second) if pair.first.schedule == claimed else (pair.second, pair.first)
    seeds = pair.seeds
    differences = [ours.best()[s] - theirs.best()[s] for s in seeds]
    difference, spread = mean_sd(differences)[0], pair.pooled_sd()
    said = verdict(difference, spread, len(seeds))
    runs = f"{ours.schedule} for {ours.epochs()} epochs"
    other = f"{theirs.schedule} for {theirs.epochs()} epochs"
    where = f"({ours.pairing}, seed{'s' if len(seeds) > 1 else ''} {' '.join(map(str, seeds))})"
    if said == UNDECIDED:
        return (f"On this data, whether {runs} matches {other} cannot be said {where}: the seeds' spread needs 2 or "
                f"more common seeds (seg batch --seeds 0 1 2).")
    figures = (f"best val/dice {figure(mean_sd([ours.best()[s] for s in seeds]), 4)} vs "
               f"{figure(mean_sd([theirs.best()[s] for s in seeds]), 4)}, mean paired difference {difference:+.4f}, "
               f"one pooled sd {spread:.4f}")
    outcome = {MATCHED: f"matched {other} within the seeds' spread",
               BETTER: f"matched {other} and beat it by more than the seeds' spread",
               SHORT: f"did not match {other}: it fell short by more than the seeds' spread"}[said]
    return f"On this data, {runs} {outcome} {where}: {figures}."


def claim_sentences(pairs: list[Paired], claimed: str, other: str) -> list[str]:
    """The sentence of every pair of the schedules `claimed` and `other`; SegError when no pair has both."""
    chosen = [pair for pair in pairs if {pair.first.schedule, pair.second.schedule} == {claimed, other}]
    if not chosen:
        raise SegError(f"--claim {claimed} {other}: the runs given hold no runs of both schedules on a common seed "
                       f"(run names <dataset>_<architecture>_<schedule>_seed<S>, from seg batch --seeds)")
    return [claim_sentence(pair, claimed) for pair in chosen]
