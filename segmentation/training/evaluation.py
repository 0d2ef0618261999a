"""`seg test`'s scoring: each held-out case in its input's own geometry, against its label file as the user has it.

Every prediction takes the path of `seg predict` (probabilities resampled linearly to the input's
grid, then discretised, then the dataset's own label values), and is compared with the label
file read with nibabel — no resampled ground truth is scored. Both go through the dataset's
`labels_to_targets` (BraTS: regions TC/WT/ET from 1/2/4 or 1/2/3), and Dice (the policy of
`model.metrics`) and HD95 in millimetres of the input's grid are computed per class per case.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from monai.data import decollate_batch

from ..data.geometry import discrete_in_input_grid
from ..model.metrics import CaseMetrics


class NativeSpaceScorer(Callback):
    """Scores each test case in its input's geometry, then logs the means, prints the table and writes the CSV.

    Args:
        table_path: where the CSV goes (`<run>/test/<checkpoint name>.csv` beside the tested checkpoint's run).
    """

    def __init__(self, table_path: Path):
        self.table_path = Path(table_path)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        """A fresh table, and the name of the split being scored."""
        self.split = getattr(trainer.datamodule, "tested_split", "test")
        self.metrics = CaseMetrics(pl_module.class_names, pl_module.hparams.multilabel)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Invert, discretise and score every case of the batch."""
        datamodule = trainer.datamodule
        items = decollate_batch({"image": batch["image"], "pred": outputs})
        for item, case, label_file in zip(items, batch["case"], batch["label_file"]):
            discrete = discrete_in_input_grid(item, datamodule.test_pipeline, pl_module.hparams.multilabel)
            predicted = datamodule.labels_to_targets(datamodule.prediction_to_labels(discrete.cpu()))
            truth_image = nib.load(label_file)
            truth = torch.as_tensor(np.rint(np.asanyarray(truth_image.dataobj)).astype(np.int64))[None]
            spacing = [float(z) for z in truth_image.header.get_zooms()[:3]]
            self.metrics.add(case, predicted, datamodule.labels_to_targets(truth), spacing)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        """Log `test/dice/<class>` and `test/hd95/<class>`, print the table, write the CSV."""
        for key, value in self.metrics.means().items():
            pl_module.log(f"test/{key}", value)
        if not trainer.is_global_zero or not self.metrics.rows:
            return
        print(f"seg test: {len(self.metrics.rows)} cases of the {self.split} split, scored in each input's "
              f"geometry against its label file", flush=True)
        print(self.metrics.table(self.split), flush=True)
        path = self.metrics.write_csv(self.table_path, self.split)
        print(f"per-case metrics: {path}", flush=True)
