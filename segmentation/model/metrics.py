"""Segmentation metrics with one stated policy, computed from label maps (never full one-hot volumes).

**Dice policy**, per class (or region) per case: truth and prediction both empty -> 1 (the BraTS
convention: nothing to find, nothing found); truth empty but something predicted -> 0 (a false
positive always costs); otherwise 2 |P ∩ T| / (|P| + |T|). `val/dice` is the mean over classes of
the mean over cases. `dice_present` gives the Dice only where the class is in the truth (NaN
elsewhere): MONAI's `ignore_empty=True` view, logged as `val/dice_fg` for comparison only.

Per case, three counts per class — true positives, predicted voxels, true voxels — are all a
metric needs, so cases can be gathered across devices as a few integers each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

from ..core.storage import write_csv_atomically

TP, PREDICTED, TRUE = 0, 1, 2


def overlap_counts(prediction: torch.Tensor, target: torch.Tensor, num_classes: int, multilabel: bool) -> torch.Tensor:
    """(C, 3) counts (true positives, predicted, true voxels) of each foreground class or region of one case.

    `prediction` and `target` are (X, Y, Z) integer label maps with values 0..num_classes-1 (0 the
    background, left out: C = num_classes - 1), or (C, X, Y, Z) boolean region masks when `multilabel`.
    """
    if multilabel:
        p, t = prediction.bool(), target.bool()
        dims = tuple(range(1, p.ndim))
        return torch.stack([(p & t).sum(dims), p.sum(dims), t.sum(dims)], dim=1)
    p, t = prediction.long().flatten(), target.long().flatten()
    if p.is_cuda and torch.are_deterministic_algorithms_enabled():  # CUDA bincount is not deterministic
        counts = [torch.stack([((p == c) & (t == c)).sum(), (p == c).sum(), (t == c).sum()])
                  for c in range(1, num_classes)]
        return torch.stack(counts)
    confusion = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)  # rows: truth, columns: prediction
    return torch.stack([confusion.diagonal(), confusion.sum(0), confusion.sum(1)], dim=1)[1:]


def dice_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """Dice by the module's policy from (..., C, 3) counts: 1 where truth and prediction are both empty."""
    counts = counts.double()
    total = counts[..., PREDICTED] + counts[..., TRUE]
    return torch.where(total > 0, 2 * counts[..., TP] / total.clamp(min=1), torch.ones_like(total))


def dice_present(counts: torch.Tensor) -> torch.Tensor:
    """Dice only where the class is in the truth; NaN elsewhere (MONAI's `ignore_empty=True`)."""
    dice = dice_from_counts(counts)
    return torch.where(counts[..., TRUE] > 0, dice, torch.full_like(dice, float("nan")))


def first_of_each_case(indices: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`indices` (N,) and `counts` (N, ...) rows with each case index kept once (a distributed sampler pads
    ranks to equal length by repeating cases), sorted by index."""
    unique: dict[int, int] = {}
    for row, index in enumerate(indices.tolist()):
        unique.setdefault(int(index), row)
    order = sorted(unique)
    rows = torch.tensor([unique[i] for i in order], dtype=torch.long, device=counts.device)
    return torch.tensor(order, dtype=torch.long), counts.index_select(0, rows)


class CaseMetrics:
    """Per-case Dice (the policy above) and HD95 (mm) of each foreground class or region, for `seg test`."""

    def __init__(self, class_names: list[str], multilabel: bool):
        self.class_names = class_names
        self.multilabel = multilabel
        self.rows: list[dict[str, Any]] = []

    def add(self, case: str, prediction: torch.Tensor, target: torch.Tensor, spacing: Optional[list[float]]) -> None:
        """Score one case: (X, Y, Z) label maps, or (C, X, Y, Z) region masks when `multilabel`."""
        num_classes = len(self.class_names) + (0 if self.multilabel else 1)
        dice = dice_from_counts(overlap_counts(prediction, target, num_classes, self.multilabel))
        row: dict[str, Any] = {"case": case}
        for index, name in enumerate(self.class_names):
            row[f"dice/{name}"] = float(dice[index])
            row[f"hd95/{name}"] = self._hd95(prediction, target, index, spacing)
        self.rows.append(row)

    def _hd95(self, prediction: torch.Tensor, target: torch.Tensor, index: int, spacing) -> float:
        """HD95 in mm of one class, from its two masks alone (NaN where either is empty)."""
        if self.multilabel:
            p, t = prediction[index].bool(), target[index].bool()
        else:
            p, t = prediction == index + 1, target == index + 1
        if not p.any() or not t.any():
            return float("nan")
        distance = compute_hausdorff_distance(p[None, None].float(), t[None, None].float(), include_background=True,
                                              percentile=95, spacing=spacing)
        return float(distance[0, 0])

    def means(self) -> dict[str, float]:
        """The mean over cases of each column (HD95: over the cases where it is defined)."""
        columns = [key for key in self.rows[0] if key != "case"] if self.rows else []
        return {key: float(np.nanmean([row[key] for row in self.rows])) for key in columns}

    def rows_with_mean(self, split: str) -> list[dict[str, Any]]:
        """The per-case rows and the mean row, each naming the split its cases came from."""
        return [{"split": split, **row} for row in [*self.rows, {"case": "mean", **self.means()}]]

    def table(self, split: str = "test") -> str:
        """The per-case table and its mean, as aligned text."""
        rows = self.rows_with_mean(split)
        columns = list(rows[0])
        lines = ["  ".join(f"{c:>14}" for c in columns)]
        for row in rows:
            lines.append("  ".join(f"{row[c]:>14.4f}" if c not in ("case", "split") else f"{row[c]:>14}"
                                   for c in columns))
        return "\n".join(lines)

    def write_csv(self, path: Path, split: str = "test") -> Path:
        """The per-case rows and the mean row as CSV (first columns: split, case)."""
        rows = self.rows_with_mean(split)
        return write_csv_atomically(path, rows)
