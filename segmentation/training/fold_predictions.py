"""Keeps the label maps a scored stage predicted: each case in its input's geometry, as `seg predict` writes it.

Cross-validation scores each fold's validation cases with `seg test`'s scorer (`training.evaluation`) and
keeps the predictions beside the scores, for decisions made later on them (postprocessing): `manifest.json`
beside them names each case's label file and the label values of each class (`DatasetFacts.class_values`).
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from monai.data import decollate_batch
from typing_extensions import override

from ..core.constants import FOLD_MANIFEST as MANIFEST
from ..core.log import log
from ..core.storage import write_text_atomically
from ..data.geometry import discrete_in_input_grid, save_in_input_geometry
from .gathering import gather_objects


class KeepLabelMaps(Callback):
    """Writes `<folder>/<case>.nii.gz` for every tested case: the label map `seg predict` would write for it.

    The same path as `training.prediction.PredictionWriter` (probabilities resampled to the input's grid,
    discretised there, the dataset's own label values, the input file's header), taken by `trainer.test`.

    Args:
        folder: where the label maps go (created).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.written: list[Path] = []
        self.truths: dict[str, str] = {}  # case -> its label file

    @override
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Invert, discretise and save every case of the batch."""
        datamodule = trainer.datamodule
        pipeline = datamodule.inference_plan("test").pipeline
        items = decollate_batch({"image": batch["image"], "pred": outputs})
        for item, case, source, truth in zip(items, batch["case"], batch["source"], batch["label_file"]):
            self.truths[str(case)] = str(truth)
            discrete = discrete_in_input_grid(item, pipeline, pl_module.hparams.multilabel)
            labels = datamodule.prediction_to_labels(discrete.cpu())
            self.written.append(save_in_input_geometry(labels, Path(source), self.folder / f"{case}.nii.gz"))

    @override
    def on_test_end(self, trainer, pl_module) -> None:
        """Write the manifest (every rank's cases) and say where the label maps went."""
        written = sum(gather_objects(trainer, len(self.written)))
        truths = {case: path for part in gather_objects(trainer, self.truths) for case, path in part.items()}
        if trainer.is_global_zero:
            manifest = {"classes": trainer.datamodule.class_values(), "truths": dict(sorted(truths.items()))}
            self.folder.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
            log.info(f"kept {written} label maps in {self.folder}")
