"""Keep-the-largest-component postprocessing: decided per class on pooled cross-validation cases, then applied.

nnU-Net's rule (nnunetv2/postprocessing/remove_connected_components.py, `determine_postprocessing`): first
"all foreground as one" — the union of every class's voxels reduced to its largest connected component — kept
when the mean Dice over classes rises strictly and no class's Dice falls; then, with more than one class, each
class (or region) in declaration order on top of what was kept so far, kept when that class's mean Dice over
the pooled cases rises strictly. Voxels of a step's label values outside their largest component become
background 0 (nnU-Net's `remove_all_but_largest_component_from_segmentation`).

Everything works on label maps in the dataset's own values; a class is the set of label values it covers (one
value for a class, several for a BraTS region: TC = {1, 4}, WT = {1, 2, 4}, ET = {4}). For overlapping regions
this means: an island of WT removed takes its TC and ET voxels with it; an island of ET removed becomes
background (not edema), as in nnU-Net — the decision measures each step on the maps the earlier steps left,
so what a step does to its own region is what was measured. Components are 6-connected (face neighbours:
`scipy.ndimage.label`'s default structure); of equal largest components the first in scan order is kept.
Dice follows `model.metrics`' policy (both empty -> 1, truth empty but predicted -> 0), mean over cases.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..core.errors import SegError
from .metrics import dice_from_counts

FOREGROUND = "foreground"  # the step on the union of every class's label values
CONNECTIVITY = 6
Pair = tuple[np.ndarray, np.ndarray]  # (predicted label map, ground-truth label map), the same shape


@dataclass(frozen=True)
class Step:
    """One candidate step: keep the largest component of the voxels holding `values`, judged by the Dice of its class
    (of every class for the foreground step)."""

    name: str  # a class (region) name, or `foreground`
    values: tuple[int, ...]  # the label values whose voxels form the mask
    applied: bool = False
    dice_before: float = float("nan")  # the pooled mean Dice of the judged class (foreground: mean over classes)
    dice_after: float = float("nan")


@dataclass
class Postprocessing:
    """The decision: every step tried, in order, with the pooled Dice before and after it."""

    classes: dict[str, tuple[int, ...]]  # class (region) name -> its label values, in the model's order
    steps: list[Step] = field(default_factory=list)
    cases: int = 0

    def refuse_other_classes(self, classes: dict, source: str) -> None:
        """SegError (naming `source`) when this decision's classes (names and label values) are not `classes`, the
        model's: a decision fits the cross-validation it came from."""
        if self.classes != classes:
            raise SegError(f"{source}: its classes {self.classes} are not the model's {classes}; give the decision "
                           f"of this model's cross-validation")

    def applied(self) -> list[Step]:
        """The steps kept, in the order they are applied."""
        return [step for step in self.steps if step.applied]

    def describe(self) -> str:
        """One phrase: which components are kept (`nothing` when no step was kept)."""
        kept = [step.name for step in self.applied()]
        return f"keep the largest component of {', '.join(kept)}" if kept else "nothing applied"

    def lines(self) -> list[str]:
        """One line per step tried: applied or not, the pooled mean Dice before and after."""
        return [f"{step.name} ({'+'.join(map(str, step.values))}): {'applied' if step.applied else 'not applied'}, "
                f"Dice {step.dice_before:.4f} -> {step.dice_after:.4f}" for step in self.steps]

    def to_json(self) -> str:
        """The decision as JSON (`rule`, `connectivity`, `cases`, `classes`, `steps`)."""
        data = {"rule": "keep the largest connected component where the pooled CV mean Dice rises (nnU-Net)",
                "connectivity": CONNECTIVITY, "cases": self.cases,
                "classes": {name: list(values) for name, values in self.classes.items()},
                "steps": [{**asdict(step), "values": list(step.values)} for step in self.steps]}
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "postprocessing") -> Postprocessing:
        """The decision `to_json` wrote; SegError naming `source` for anything else."""
        try:
            data = json.loads(text)
            classes = {str(name): tuple(int(v) for v in values) for name, values in data["classes"].items()}
            steps = [Step(str(s["name"]), tuple(int(v) for v in s["values"]), bool(s["applied"]),
                          float(s["dice_before"]), float(s["dice_after"])) for s in data["steps"]]
            if int(data.get("connectivity", CONNECTIVITY)) != CONNECTIVITY:
                raise ValueError(f"connectivity {data['connectivity']} (seg uses {CONNECTIVITY})")
            return cls(classes, steps, int(data.get("cases", 0)))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise SegError(f"{source}: not a postprocessing decision of seg report --cv ({err})") from None


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean mask (the first in scan order of equal ones)."""
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def keep_largest(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """A copy of `labels` whose voxels of `values` outside their largest component are background 0."""
    mask = np.isin(labels, list(values))
    result = labels.copy()
    result[mask & ~largest_component(mask)] = 0
    return result


def apply_postprocessing(labels: np.ndarray, decision: Postprocessing) -> np.ndarray:
    """`labels` (a label map, any shape) with every applied step of `decision`, in order."""
    for step in decision.applied():
        labels = keep_largest(labels, step.values)
    return labels


def apply_to_tensor(labels: torch.Tensor, decision: Postprocessing) -> torch.Tensor:
    """`apply_postprocessing` of a label-map tensor (any shape), on its device and dtype."""
    if not decision.applied():
        return labels
    result = apply_postprocessing(labels.detach().cpu().numpy(), decision)
    return torch.as_tensor(result, dtype=labels.dtype).to(labels.device)


def class_dice(prediction: np.ndarray, truth: np.ndarray, values: Sequence[int]) -> float:
    """The Dice of one class (the voxels of `values`) of one case, by `model.metrics`' policy."""
    p, t = np.isin(prediction, list(values)), np.isin(truth, list(values))
    counts = torch.tensor([float(np.count_nonzero(p & t)), float(np.count_nonzero(p)), float(np.count_nonzero(t))])
    return float(dice_from_counts(counts))


def _means(cases: Sequence[Pair] | Sequence[Callable[[], Pair]], accepted: list[Step], candidates: list[Step],
           classes: dict[str, tuple[int, ...]]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """One pass over the cases: the mean Dice per class of the maps with `accepted` applied, and of those maps with
    each candidate applied on top (candidates are evaluated independently of each other)."""
    before = {name: 0.0 for name in classes}
    after = [{name: 0.0 for name in classes} for _ in candidates]
    for case in cases:
        prediction, truth = case() if callable(case) else case
        current = apply_postprocessing(prediction, Postprocessing(classes, accepted))
        for name, values in classes.items():
            before[name] += class_dice(current, truth, values) / len(cases)
        for index, step in enumerate(candidates):
            changed = keep_largest(current, step.values)
            judged = classes if step.name == FOREGROUND else {step.name: classes[step.name]}
            for name, values in judged.items():
                after[index][name] += class_dice(changed, truth, values) / len(cases)
    return before, after


def decide_postprocessing(cases: Sequence[Pair] | Sequence[Callable[[], Pair]],
                          classes: dict[str, tuple[int, ...]]) -> Postprocessing:
    """nnU-Net's decision on pooled (prediction, truth) label maps (or callables loading them, read once per pass):
    the foreground step (with more than one class), then every class in order; see the module's docstring."""
    if not cases:
        raise SegError("no cases to decide postprocessing on")
    accepted: list[Step] = []
    steps: list[Step] = []
    if len(classes) > 1:
        union = tuple(sorted({value for values in classes.values() for value in values}))
        baseline, (united,) = _means(cases, [], [Step(FOREGROUND, union)], classes)
        mean_before, mean_after = float(np.mean(list(baseline.values()))), float(np.mean(list(united.values())))
        kept = mean_after > mean_before and all(united[name] >= baseline[name] for name in classes)
        steps.append(Step(FOREGROUND, union, kept, mean_before, mean_after))
        accepted += steps[-1:] if kept else []
    candidates = [Step(name, values) for name, values in classes.items()]
    value_sets = [set(values) for values in classes.values()]
    disjoint = sum(map(len, value_sets)) == len(set().union(*value_sets))
    # classes of disjoint label values do not touch each other's voxels: one pass judges them all
    for batch in ([candidates] if disjoint else [[step] for step in candidates]):
        before, after = _means(cases, accepted, batch, classes)
        for step, values_after in zip(batch, after):
            kept = values_after[step.name] > before[step.name]
            steps.append(Step(step.name, step.values, kept, before[step.name], values_after[step.name]))
            accepted += steps[-1:] if kept else []
    return Postprocessing(dict(classes), steps, len(cases))
