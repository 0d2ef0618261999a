"""`seg predict`'s writer: each predicted case as a label map in its input's own geometry and label values."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from lightning.pytorch.callbacks import BasePredictionWriter
from monai.data import decollate_batch
from typing_extensions import override

from ..core.log import log
from ..data.geometry import discrete_in_input_grid, save_in_input_geometry
from ..model.postprocessing import Postprocessing, apply_to_tensor
from .gathering import gather_objects


class PredictionWriter(BasePredictionWriter):
    """Writes `<output_dir>/<case>.nii.gz` for every predicted case.

    Each prediction's probabilities are resampled to the input's grid and discretised there
    (`data.geometry.discrete_in_input_grid`), turned into the dataset's own label values
    (`datamodule.prediction_to_labels`), postprocessed where a decision is given (`model.postprocessing`), and
    saved with the input file's header.
    """

    def __init__(self, output_dir: str | Path, postprocessing: Optional[Postprocessing] = None):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.postprocessing = postprocessing
        self.written: list[Path] = []
        self.replaced: list[Path] = []  # files of the same name that were there before

    @override
    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        """Invert the preprocessing of each case in the batch and save its label map."""
        datamodule = trainer.datamodule
        items = decollate_batch({"image": batch["image"], "pred": prediction})
        for item, case, source in zip(items, batch["case"], batch["source"]):
            pipeline = datamodule.inference_plan("predict").pipeline
            discrete = discrete_in_input_grid(item, pipeline, pl_module.hparams.multilabel)
            labels = datamodule.prediction_to_labels(discrete)
            if self.postprocessing is not None:
                labels = apply_to_tensor(labels.cpu(), self.postprocessing)  # (scipy: on the CPU, saved from there)
            target = self.output_dir / f"{case}.nii.gz"
            if target.exists():
                self.replaced.append(target)
            self.written.append(save_in_input_geometry(labels, Path(source), target))

    @override
    def on_predict_end(self, trainer, pl_module) -> None:
        """Say where the label maps went."""
        written, replaced = (sum(counts) for counts in zip(*gather_objects(trainer, (len(self.written),
                                                                                        len(self.replaced)))))
        if trainer.is_global_zero:  # (each rank wrote its shard)
            again = f" ({replaced} of them replaced files of the same name there)" if replaced else ""
            log.info(f"wrote {written} label maps to {self.output_dir}{again}")
