"""The cross-validation table: per-case scores of every fold's validation cases, per fold, mean ± sd, pooled.

Pure arithmetic on the rows `seg test`'s scorer wrote (`case`, `dice/<class>`, `hd95/<class>`): each case is
scored once, by the fold that held it out. Per fold: the mean over its cases; across folds: the mean and the
sample standard deviation (ddof 1) of the fold means; pooled: the mean over every case of every fold. HD95 is
averaged where it is defined (NaN where a class is absent from the prediction or the truth), as `seg test` does.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

from ..core.storage import write_csv_atomically

MEAN_OVER_FOLDS, SD_OVER_FOLDS, POOLED = "mean over folds", "sd over folds", "pooled over cases"


def defined_mean(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN if none is)."""
    known = [v for v in values if not math.isnan(v)]
    return mean(known) if known else math.nan


@dataclass
class CvTable:
    """Per-case rows of every fold (`fold`, `case`, metric columns) and the summaries made from them."""

    folds: dict[int, list[dict]]  # fold -> that fold's per-case rows (case and metric columns)

    @property
    def metrics(self) -> list[str]:
        """The metric columns (`dice/<class>`, `hd95/<class>`), in the scorer's order."""
        first = next((rows[0] for rows in self.folds.values() if rows), {})
        return [key for key in first if key.startswith(("dice/", "hd95/"))]

    def fold_means(self) -> dict[int, dict[str, float]]:
        """Each fold's mean over its validation cases, per metric."""
        return {fold: {m: defined_mean([float(r[m]) for r in rows]) for m in self.metrics}
                for fold, rows in sorted(self.folds.items())}

    def across_folds(self) -> tuple[dict[str, float], dict[str, float]]:
        """(mean, sample sd) over the folds of the fold means, per metric (sd NaN with one fold)."""
        means, sds = {}, {}
        for metric in self.metrics:
            values = [m[metric] for m in self.fold_means().values() if not math.isnan(m[metric])]
            means[metric] = mean(values) if values else math.nan
            sds[metric] = stdev(values) if len(values) > 1 else math.nan
        return means, sds

    def pooled(self) -> dict[str, float]:
        """The mean over every case of every fold, per metric."""
        rows = [row for fold_rows in self.folds.values() for row in fold_rows]
        return {m: defined_mean([float(r[m]) for r in rows]) for m in self.metrics}

    def csv_rows(self) -> list[dict]:
        """One row per case (with its fold), each fold's mean, then the mean and sd over folds and the pooled mean."""
        rows: list[dict] = []
        for fold, fold_rows in sorted(self.folds.items()):
            rows += [{"fold": fold, "case": r["case"], **{m: float(r[m]) for m in self.metrics}} for r in fold_rows]
        rows += [{"fold": fold, "case": "mean", **values} for fold, values in self.fold_means().items()]
        means, sds = self.across_folds()
        rows += [{"fold": "all", "case": MEAN_OVER_FOLDS, **means}, {"fold": "all", "case": SD_OVER_FOLDS, **sds},
                 {"fold": "all", "case": POOLED, **self.pooled()}]
        return rows

    def write_csv(self, path: Path) -> Path:
        """The CSV of `csv_rows` at `path` (written atomically)."""
        rows = self.csv_rows()
        return write_csv_atomically(path, rows)

    def markdown(self) -> str:
        """Per fold (cases, the mean per metric), mean ± sd over folds and the pooled mean, as a Markdown table."""
        lines = ["| fold | cases | " + " | ".join(self.metrics) + " |", "|" + " --- |" * (len(self.metrics) + 2)]
        for fold, values in self.fold_means().items():
            lines.append(f"| {fold} | {len(self.folds[fold])} | " + " | ".join(cell(values[m]) for m in self.metrics)
                         + " |")
        means, sds = self.across_folds()
        lines.append(f"| mean ± sd | {len(self.folds)} folds | "
                     + " | ".join(f"{cell(means[m])} ± {cell(sds[m])}" for m in self.metrics) + " |")
        pooled = self.pooled()
        cases = sum(len(rows) for rows in self.folds.values())
        lines.append(f"| pooled | {cases} | " + " | ".join(cell(pooled[m]) for m in self.metrics) + " |")
        return "\n".join(lines) + "\n"


def cell(value: float) -> str:
    """A table cell: 4 decimals, `-` for NaN."""
    return "-" if math.isnan(value) else f"{value:.4f}"


def read_case_rows(path: Path) -> list[dict]:
    """The per-case rows of a `seg test` CSV (its `mean` row left out)."""
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["case"] != "mean"]
