"""Per-case test metrics: Dice and HD95 (mm) of each class, as a table and a CSV (`seg test`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance


class CaseMetrics:
    """Per-case Dice and HD95 (mm) of each foreground class or region, for `seg test`."""

    def __init__(self, class_names: list[str]):
        self.class_names = class_names
        self.rows: list[dict[str, Any]] = []

    def add(self, case: str, prediction: torch.Tensor, target: torch.Tensor, spacing: Optional[list[float]],
            include_background: bool) -> None:
        """Score one case; `prediction` and `target` are (1, C, X, Y, Z) one-hot or region masks."""
        dice = compute_dice(prediction, target, include_background=include_background, ignore_empty=True)[0]
        hd95 = compute_hausdorff_distance(
            prediction, target, include_background=include_background, percentile=95, spacing=spacing
        )[0]
        row: dict[str, Any] = {"case": case}
        for name, d, h in zip(self.class_names, dice.tolist(), hd95.tolist()):
            row[f"dice/{name}"], row[f"hd95/{name}"] = d, h
        self.rows.append(row)

    def means(self) -> dict[str, float]:
        """The mean over cases of each column (NaN where a class was absent everywhere)."""
        columns = [key for key in self.rows[0] if key != "case"] if self.rows else []
        return {key: float(np.nanmean([row[key] for row in self.rows])) for key in columns}

    def table(self) -> str:
        """The per-case table and its mean, as aligned text."""
        columns = ["case", *[k for k in (self.rows[0] if self.rows else {}) if k != "case"]]
        lines = ["  ".join(f"{c:>14}" for c in columns)]
        for row in [*self.rows, {"case": "mean", **self.means()}]:
            lines.append("  ".join(f"{row[c]:>14.4f}" if c != "case" else f"{row[c]:>14}" for c in columns))
        return "\n".join(lines)

    def write_csv(self, path: Path) -> Path:
        """The per-case rows and the mean row as CSV."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows([*self.rows, {"case": "mean", **self.means()}])
        return path
