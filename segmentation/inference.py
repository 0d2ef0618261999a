"""After training: label maps written in each input's own geometry, and per-case test metrics.

`PredictionWriter` undoes the preprocessing of every predicted volume (MONAI
`Invertd`: resampling and reorientation, nearest-neighbour), turns it into the
dataset's own label values, and saves it with the input file's header, so the
output has the input's shape, affine and orientation.

`CaseMetrics` collects per-case Dice and HD95 during `seg test` and writes the
table (per case, and the mean) to the console and to `test_metrics.csv`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

import nibabel as nib
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from monai import transforms as mt
from monai.data import MetaTensor, decollate_batch
from monai.metrics import compute_dice, compute_hausdorff_distance


def first_image_path(image: Any) -> Path:
    """The file whose geometry a prediction takes: the image, or its first channel's file."""
    return Path(image[0] if isinstance(image, (list, tuple)) else image)


def save_in_input_geometry(labels: torch.Tensor, source: Path, target: Path) -> Path:
    """Save a (1, X, Y, Z) label map with the header (shape, affine, orientation) of `source`."""
    reference = nib.load(str(source))
    data = labels[0].detach().cpu().numpy().astype(np.uint8 if labels.max() < 256 else np.int16)
    if data.shape != reference.shape[:3]:
        raise RuntimeError(f"prediction shape {data.shape} does not match {source} {reference.shape[:3]}")
    header = reference.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header["scl_slope"], header["scl_inter"] = 1, 0
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, reference.affine, header), str(target))
    return target


def undo_preprocessing(item: dict, pipeline: mt.Compose) -> torch.Tensor:
    """`item["pred"]` (C, X, Y, Z, on the preprocessed grid of `item["image"]`) back on the input's voxel grid.

    `pipeline` must be the very Compose that preprocessed the image (MONAI checks the instances).
    """
    inverse = mt.Invertd(keys="pred", transform=pipeline, orig_keys="image", nearest_interp=True)
    # Invertd silently skips a plain tensor: it must be a MetaTensor to receive the image's operations
    item = {**item, "pred": MetaTensor(item["pred"])}
    return torch.as_tensor(inverse(item)["pred"])


class PredictionWriter(BasePredictionWriter):
    """Writes `<output_dir>/<case>.nii.gz` for every predicted case (see module docstring)."""

    def __init__(self, output_dir: str | Path):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.written: list[Path] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        """Invert the preprocessing of each case in the batch and save its label map."""
        datamodule = trainer.datamodule
        items = decollate_batch({"image": batch["image"], "pred": prediction})
        for item, case, source in zip(items, batch["case"], batch["source"]):
            labels = datamodule.prediction_to_labels(undo_preprocessing(item, datamodule.predict_pipeline))
            self.written.append(save_in_input_geometry(labels, Path(source), self.output_dir / f"{case}.nii.gz"))

    def on_predict_end(self, trainer, pl_module) -> None:
        """Say where the label maps went."""
        if trainer.is_global_zero:
            print(f"wrote {len(self.written)} label maps to {self.output_dir}", flush=True)


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
