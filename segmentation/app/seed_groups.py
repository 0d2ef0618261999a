"""Runs that differ only by seed: `seg batch --seeds` plans them, `seg report` groups them and pairs two schedules.

A run's seed S (`seg batch --seeds S ...`) is `--seed_everything S` (the network's initial weights) with
`--data.sampling_seed S` (every epoch's shuffle, patches and augmentation); `data.seed`, the split's seed, stays the
config's, so the runs of every seed train and validate on the same cases. Its run directory is
`<dataset>_<architecture>_<schedule>_seed<S>[_fold<K>]`; the runs of one name without `_seed<S>` form a group.

Per run: its best val/dice, the first epoch whose val/dice reached 95% of that best, and its wall time (the sum of
its epochs' times, as `seg report`'s table counts it). Per group: the mean and the sample sd (n - 1) over its seeds.
Paired: two groups of the same name but for the schedule (same dataset, architecture, fold) on their common seeds:
the per-seed difference of best val/dice (first minus second), its mean and sample sd, and the seeds each won.
Pure arithmetic on `run_history.RunCurves`: nothing here reads files or prints.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from statistics import mean, stdev
from typing import Any, Optional

from ..core.errors import SegError
from ..schedules.plans import SCHEDULES
from .run_history import RunCurves

SEED_NAME = re.compile(r"^(?P<base>.+)_seed(?P<seed>\d+)(?P<fold>_fold\d+)?$")
REACHED = 0.95  # the share of its best val/dice whose first epoch is tabulated


def refuse_bad_seeds(seeds: Optional[list[int]]) -> None:
    """SegError for a negative or repeated seed of `seg batch --seeds`."""
    if not seeds:
        return
    if negative := [s for s in seeds if s < 0]:
        raise SegError(f"--seeds {' '.join(map(str, negative))}: a seed is 0 or more (e.g. --seeds 0 1 2)")
    if repeated := sorted({s for s in seeds if seeds.count(s) > 1}):
        raise SegError(f"--seeds {' '.join(map(str, seeds))}: {' '.join(map(str, repeated))} given twice; give each "
                       f"seed once (a seed's runs would be the same runs)")


def per_seed(run: Any, seeds: Optional[list[int]]) -> list[Any]:
    """A batch's `run` itself without `--seeds`; else one copy per seed S, training with `--seed_everything S
    --data.sampling_seed S` (the split's `data.seed` unchanged)."""
    if not seeds:
        return [run]
    return [replace(run, seed=s, fit_args=[*run.fit_args, f"--seed_everything={s}", f"--data.sampling_seed={s}"],
                    notes=[]) for s in seeds]


def mean_sd(values: list[float]) -> tuple[float, float]:
    """(mean, sample sd with n - 1); the sd is NaN for one value, both NaN for none."""
    if not values:
        return math.nan, math.nan
    return mean(values), stdev(values) if len(values) > 1 else math.nan


def reached_epoch(run: RunCurves, share: float = REACHED) -> Optional[int]:
    """The first epoch whose val/dice reached `share` of the run's best (None without validation)."""
    best = run.best_dice()
    if best is None:
        return None
    return min(epoch for epoch, dice in run.dice.items() if dice >= share * best[0])


def run_seconds(run: RunCurves) -> float:
    """The run's wall time: the sum of its epochs' times."""
    return sum(run.epoch_seconds.values())


@dataclass
class SeedGroup:
    """The runs of one run name without `_seed<S>` (same data, architecture, schedule and fold), by seed."""

    name: str  # `<dataset>_<architecture>_<schedule>[_fold<K>]`
    schedule: str  # the schedule in the name ("" when the name ends with none seg knows)
    runs: dict[int, RunCurves]

    @property
    def pairing(self) -> str:
        """The name without its schedule: groups with the same pairing differ only by schedule."""
        base, fold = re.fullmatch(r"(.+?)(_fold\d+)?", self.name).groups()  # type: ignore[union-attr]
        return base.removesuffix(f"_{self.schedule}") + (fold or "")

    def best(self) -> dict[int, float]:
        """Seed -> best val/dice (runs without validation left out)."""
        return {seed: best[0] for seed, run in sorted(self.runs.items()) if (best := run.best_dice()) is not None}

    def reached(self) -> dict[int, int]:
        """Seed -> first epoch at 95% of the run's best val/dice."""
        return {seed: epoch for seed, run in sorted(self.runs.items()) if (epoch := reached_epoch(run)) is not None}

    def seconds(self) -> dict[int, float]:
        """Seed -> the run's wall time (s)."""
        return {seed: run_seconds(run) for seed, run in sorted(self.runs.items())}

    def epochs(self) -> str:
        """The epochs the runs trained: one number, or `low-high` when they differ."""
        counts = sorted({run.epochs for run in self.runs.values()})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def schedule_in(base: str) -> str:
    """The schedule a run name `<dataset>_<architecture>_<schedule>` ends with (the longest match), else ""."""
    return max((s for s in SCHEDULES if base.endswith(f"_{s}")), key=len, default="")


def group_by_seed(runs: list[RunCurves]) -> list[SeedGroup]:
    """The groups of the runs named `..._seed<S>[_fold<K>]`, in the order their first run was given; runs without
    a seed are left out. SegError for two runs of one group with the same seed."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        match = SEED_NAME.match(run.name.split("/")[0])
        if match is None:
            continue
        name = match["base"] + (match["fold"] or "")
        group = groups.setdefault(name, SeedGroup(name, schedule_in(match["base"]), {}))
        seed = int(match["seed"])
        if seed in group.runs:
            raise SegError(f"{group.runs[seed].name} and {run.name} are both seed {seed} of {name}: give one of them")
        group.runs[seed] = run
    return list(groups.values())


def figure(mean_and_sd: tuple[float, float], digits: int, sign: str = "") -> str:
    """`mean ± sd` (`mean` alone for one seed, `-` for none); `sign` "+": the mean with its sign."""
    average, sd = mean_and_sd
    if math.isnan(average):
        return "-"
    return f"{average:{sign}.{digits}f}" + (f" ± {sd:.{digits}f}" if not math.isnan(sd) else "")


def seed_table(groups: list[SeedGroup]) -> str:
    """Markdown: per group its seeds and the mean ± sd over them of best val/dice, the 95% epoch, the wall time."""
    lines = ["| runs | seeds | epochs | best val/dice | epoch at 95% of best | wall time (s) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for group in groups:
        reached = [float(e) for e in group.reached().values()]
        lines.append(f"| {group.name} | {' '.join(map(str, sorted(group.runs)))} | {group.epochs()} | "
                     f"{figure(mean_sd(list(group.best().values())), 4)} | {figure(mean_sd(reached), 1)} | "
                     f"{figure(mean_sd(list(group.seconds().values())), 1)} |")
    return "\n".join(lines) + "\n"


@dataclass
class Paired:
    """Two schedules of one pairing on their common seeds: best val/dice differences, first minus second."""

    first: SeedGroup
    second: SeedGroup

    @property
    def seeds(self) -> list[int]:
        """The seeds both groups have a best val/dice of."""
        return sorted(set(self.first.best()) & set(self.second.best()))

    def differences(self) -> dict[int, float]:
        """Seed -> best val/dice of the first minus that of the second."""
        first, second = self.first.best(), self.second.best()
        return {seed: first[seed] - second[seed] for seed in self.seeds}

    def wins(self) -> tuple[int, int, int]:
        """(seeds the first won, seeds the second won, ties)."""
        values = list(self.differences().values())
        return sum(d > 0 for d in values), sum(d < 0 for d in values), sum(d == 0 for d in values)

    def pooled_sd(self) -> float:
        """The seeds' spread of one schedule: sqrt of the mean of the two groups' sample variances over the common
        seeds (NaN under 2 seeds)."""
        first, second = self.first.best(), self.second.best()
        sds = [mean_sd([values[s] for s in self.seeds])[1] for values in (first, second)]
        return math.sqrt((sds[0] ** 2 + sds[1] ** 2) / 2)


def paired(groups: list[SeedGroup]) -> list[Paired]:
    """Every two groups of one pairing with different schedules and a common seed, in the order given."""
    pairs = []
    for i, first in enumerate(groups):
        for second in groups[i + 1:]:
            pair = Paired(first, second)
            if first.pairing == second.pairing and first.schedule != second.schedule and pair.seeds:
                pairs.append(pair)
    return pairs


def paired_table(pairs: list[Paired]) -> str:
    """Markdown: per pair the seeds, the mean ± sd of the best val/dice difference and each schedule's wins."""
    lines = ["| first | second | seeds | best val/dice difference (first - second) | first won | second won | ties |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for pair in pairs:
        first, second, ties = pair.wins()
        difference = figure(mean_sd(list(pair.differences().values())), 4, "+")
        lines.append(f"| {pair.first.name} | {pair.second.name} | {' '.join(map(str, pair.seeds))} | {difference} | "
                     f"{first} | {second} | {ties} |")
    return "\n".join(lines) + "\n"
