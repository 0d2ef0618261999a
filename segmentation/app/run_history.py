"""The history of a run, read from its TensorBoard events: Dice, LR and epoch times per epoch, its schedule.

Every `events.out.tfevents.*` file of a run directory is merged (a resumed run adds one), global steps
are mapped to epochs with Lightning's `epoch` scalar, and an epoch that a resume logged again keeps its
later value. `seg report` draws and tabulates these; `seg batch` reads each run's best Dice from them.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..core.constants import EPOCH_SECONDS_TAG, EPOCH_TAG, LR_TAG, MONITOR
from ..core.errors import SegError
from ..schedules.plans import PLANS

EVENTS_GLOB = "events.out.tfevents.*"
DICE, LR, EPOCH, EPOCH_SECONDS = MONITOR, LR_TAG, EPOCH_TAG, EPOCH_SECONDS_TAG
REDUCTION_TOLERANCE = 1e-9  # relative: an LR lower than the previous epoch's by more than this is a reduction

# (step, wall time, value) of one tag, ordered by step
Series = list[tuple[int, float, float]]


@dataclass
class RunCurves:
    """One run's per-epoch values (epochs counted from 0, as in `epoch=<E>.ckpt`)."""

    name: str
    schedule: str
    epochs: int
    dice: dict[int, float] = field(default_factory=dict)
    lr: dict[int, float] = field(default_factory=dict)
    epoch_seconds: dict[int, float] = field(default_factory=dict)
    times_derived: bool = False

    def best_dice(self) -> Optional[tuple[float, int]]:
        """(best val Dice, its epoch); the earliest epoch on a tie; None without validation."""
        if not self.dice:
            return None
        epoch = max(sorted(self.dice), key=lambda e: self.dice[e])
        return self.dice[epoch], epoch

    def lr_reductions(self) -> int:
        """How many epochs started with a lower LR than the previous one (see `count_lr_reductions`)."""
        return count_lr_reductions(self.lr)


def resolve_run_dir(path: Path) -> Path:
    """`path` itself if it holds event files; for a run's parent folder, its newest `version_N`."""
    if not path.is_dir():
        raise SegError(f"run directory {path} does not exist")
    if any(path.glob(EVENTS_GLOB)):
        return path
    versions = [p for p in path.glob("version_*") if p.is_dir() and re.fullmatch(r"version_\d+", p.name)]
    if versions:
        newest = max(versions, key=lambda p: int(p.name.split("_")[1]))
        if any(newest.glob(EVENTS_GLOB)):
            return newest
        path = newest
    raise SegError(f"run directory {path} has no TensorBoard event files ({EVENTS_GLOB})")


def read_event_file(path: Path) -> dict[str, Series]:
    """Every scalar of one events file, as written (no purging)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(path), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    events.Reload()
    return {tag: [(e.step, e.wall_time, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def merge_event_files(files: list[dict[str, Series]]) -> dict[str, Series]:
    """One series per tag from all files of a run, oldest file first.

    A later file (a resumed run) supersedes everything logged from its first step on,
    as TensorBoard does; within what remains, a step written twice keeps the later write.
    """
    files = sorted((f for f in files if any(f.values())), key=lambda f: min(e[1] for s in f.values() for e in s))
    merged: dict[str, dict[int, tuple[float, float]]] = {}
    for tags in files:
        resumed_at = min(e[0] for series in tags.values() for e in series)
        for by_step in merged.values():
            for step in [s for s in by_step if s >= resumed_at]:
                del by_step[step]
        for tag, series in tags.items():
            by_step = merged.setdefault(tag, {})
            for step, wall_time, value in series:
                by_step[step] = (wall_time, value)
    return {tag: [(step, *by_step[step]) for step in sorted(by_step)] for tag, by_step in merged.items() if by_step}


def read_run_scalars(run_dir: Path) -> dict[str, Series]:
    """The merged scalars of all event files of a run directory."""
    return merge_event_files([read_event_file(path) for path in sorted(run_dir.glob(EVENTS_GLOB))])


def per_epoch(series: Series, epoch_series: Series) -> dict[int, tuple[float, float]]:
    """epoch -> (wall time, value) of a tag; a step belongs to the first `epoch` event at or after it.

    Without `epoch` events the n-th event is epoch n. Several events in one epoch: the last wins.
    """
    if not epoch_series:
        return {index: (wall, value) for index, (_, wall, value) in enumerate(series)}
    steps = [step for step, _, _ in epoch_series]
    epochs = [int(round(value)) for _, _, value in epoch_series]
    result = {}
    for step, wall, value in series:
        index = bisect.bisect_left(steps, step)
        result[epochs[index] if index < len(epochs) else epochs[-1] + 1] = (wall, value)
    return result


def derived_epoch_seconds(ends: dict[int, float], starts: dict[int, float]) -> dict[int, float]:
    """Epoch durations from wall times: from the epoch's `lr` event (its start) or else the previous
    epoch's end, to its last `epoch` (or `val/dice`) event."""
    seconds = {}
    for epoch in sorted(ends):
        start = starts.get(epoch, ends.get(epoch - 1))
        if start is not None and ends[epoch] >= start:
            seconds[epoch] = ends[epoch] - start
    return seconds


def schedule_of(run_dir: Path) -> str:
    """The run's schedule from `config.yaml` (and `config.resume<N>.yaml`: `a -> b` when a resume switched it)."""
    import yaml

    def resume_number(path: Path) -> int:
        match = re.search(r"resume(\d+)", path.name)
        return int(match.group(1)) if match else 0

    descriptions: list[str] = []
    for path in sorted(run_dir.glob("config*.yaml"), key=resume_number):
        model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
        if model.get("scheduler"):
            description = describe_schedule(model)
            if not descriptions or descriptions[-1] != description:
                descriptions.append(description)
    return " -> ".join(descriptions) or "unknown"


def describe_schedule(model: dict) -> str:
    """`name (lr=..., key parameters)` from a config's `model` section (older runs: flat schedule keys)."""
    name = model["scheduler"]
    options = {**model, **(model.get("schedule") or {})}
    parameters = [f"lr={model['lr']:g}"] if isinstance(model.get("lr"), (int, float)) else []
    for key in (PLANS[name].key_options if name in PLANS else ()):
        if key in options:
            parameters.append(f"{key.split('_', 1)[1]}={options[key]:g}")
    return f"{name} ({', '.join(parameters)})" if parameters else name


def load_run(path: Path) -> RunCurves:
    """Read one run directory (or its parent folder) into per-epoch curves."""
    run_dir = resolve_run_dir(path)
    scalars = read_run_scalars(run_dir)
    if not scalars:
        raise SegError(f"run directory {run_dir} has event files but no scalars logged yet")
    epoch_series = scalars.get(EPOCH, [])
    dice = per_epoch(scalars.get(DICE, []), epoch_series)
    lr = per_epoch(scalars.get(LR, []), epoch_series)
    curves = RunCurves(
        name=f"{run_dir.parent.name}/{run_dir.name}",
        schedule=schedule_of(run_dir),
        epochs=len({round(value) for _, _, value in epoch_series}) if epoch_series else max(len(dice), len(lr)),
        dice={epoch: value for epoch, (_, value) in dice.items()},
        lr={epoch: value for epoch, (_, value) in lr.items()},
    )
    logged = {epoch: value for epoch, (_, value) in per_epoch(scalars.get(EPOCH_SECONDS, []), epoch_series).items()}
    ends = per_epoch(epoch_series, epoch_series) if epoch_series else dice
    if set(ends) - set(logged):  # an older run (or its part before a resume) without the tag
        derived = derived_epoch_seconds(
            {epoch: wall for epoch, (wall, _) in ends.items()}, {epoch: wall for epoch, (wall, _) in lr.items()}
        )
        logged, curves.times_derived = {**derived, **logged}, True
    curves.epoch_seconds = logged
    return curves


def read_run(path: Path) -> Optional[RunCurves]:
    """`load_run`, or None where the run has no events yet (for callers such as `seg batch`)."""
    try:
        return load_run(Path(path))
    except SegError:
        return None


def count_lr_reductions(lr: dict[int, float]) -> int:
    """Epochs whose LR is lower than the previous epoch's by more than REDUCTION_TOLERANCE (relative)."""
    values = [lr[epoch] for epoch in sorted(lr)]
    return sum(1 for before, after in zip(values, values[1:]) if before - after > REDUCTION_TOLERANCE * abs(before))
