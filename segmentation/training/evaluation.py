"""`seg test`'s scoring (and `seg validate`'s record): each held-out case in its input's own geometry.

Each case is scored against its label file as the user has it.

Every prediction takes the path of `seg predict` (probabilities resampled linearly to the input's
grid, then discretised, then the dataset's own label values), and is compared with the label
file read with nibabel — no resampled ground truth is scored. Both go through the dataset's
`labels_to_targets` (BraTS: regions TC/WT/ET from 1/2/4 or 1/2/3), and Dice (the policy of
`model.metrics`) and HD95 in millimetres of the input's grid are computed per class per case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.callbacks import Callback
from monai.data import decollate_batch
from typing_extensions import override

from ..core.log import log
from ..core.storage import write_text_atomically
from ..data.geometry import discrete_in_input_grid
from ..data.nifti import label_voxels, load_nifti
from ..model.metrics import CaseMetrics
from ..model.postprocessing import Postprocessing, apply_to_tensor
from .gathering import gather_objects


class NativeSpaceScorer(Callback):
    """Scores each test case in its input's geometry, then logs the means, prints the table and writes the CSV.

    Args:
        table_path: where the CSV goes (`<run>/test/<checkpoint name>.csv` beside the tested checkpoint's run).
        postprocessing: a decision applied to every predicted label map before it is scored (`model.postprocessing`).
    """

    def __init__(self, table_path: Path, postprocessing: Optional[Postprocessing] = None):
        self.table_path = Path(table_path)
        self.postprocessing = postprocessing

    @override
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        """A fresh table, and the name of the split being scored."""
        self.plan = trainer.datamodule.inference_plan("test")
        self.metrics = CaseMetrics(pl_module.class_names, pl_module.hparams.multilabel)

    @override
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Invert, discretise and score every case of the batch."""
        datamodule = trainer.datamodule
        items = decollate_batch({"image": batch["image"], "pred": outputs})
        for item, case, label_file in zip(items, batch["case"], batch["label_file"]):
            discrete = discrete_in_input_grid(item, self.plan.pipeline, pl_module.hparams.multilabel)
            labels = datamodule.prediction_to_labels(discrete.cpu())
            if self.postprocessing is not None:
                labels = apply_to_tensor(labels, self.postprocessing)
            predicted = datamodule.labels_to_targets(labels)
            truth_image = load_nifti(label_file)
            truth = torch.as_tensor(label_voxels(truth_image))[None]
            spacing = [float(z) for z in truth_image.header.get_zooms()[:3]]
            self.metrics.add(case, predicted, datamodule.labels_to_targets(truth), spacing)

    @override
    def on_test_epoch_end(self, trainer, pl_module) -> None:
        """Gather every rank's cases (each rank scored its shard), then log `test/dice/<class>` and
        `test/hd95/<class>`, print the table and write the CSV: the same on any number of processes."""
        order = {item["case"]: position for position, item in enumerate(self.plan.items)}
        rows = [row for part in gather_objects(trainer, self.metrics.rows) for row in part]
        self.metrics.rows = sorted(rows, key=lambda row: order.get(row["case"], len(order)))
        for key, value in self.metrics.means().items():
            pl_module.log(f"test/{key}", value)
        if not trainer.is_global_zero or not self.metrics.rows:
            return
        log.info(f"seg test: {len(self.metrics.rows)} cases of the {self.plan.split} split, scored in each input's "
              f"geometry against its label file")
        log.info(self.metrics.table(self.plan.split))
        path = self.metrics.write_csv(self.table_path, self.plan.split)
        log.info(f"per-case metrics: {path}")


class ValidationResults(Callback):
    """`seg validate`'s metrics (`val/...`, as logged) written as JSON: the run's own record of what was printed.

    Args:
        path: where the JSON goes (`<run>/validate/<checkpoint name>.json` beside the validated checkpoint's run).
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        """Write the metrics (global rank 0; every rank holds the same, gathered values)."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {key: float(value) for key, value in sorted(trainer.callback_metrics.items())
                   if key.startswith("val/")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.path, json.dumps(metrics, indent=1) + "\n")
        log.info(f"validation metrics: {self.path}")
