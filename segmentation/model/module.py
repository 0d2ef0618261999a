"""SegmentationModule: network, loss, sliding-window validation, per-class Dice, optimizer and schedule."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Callable, Literal, Optional, Sequence, Union, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import AttributeDict
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from typing_extensions import override

from ..core.constants import MONITOR
from ..core.errors import SegError
from ..schedules.plans import ScheduleName, ScheduleOptions
from ..schedules.schedulers import (
    build_schedule,
    lightning_scheduler_config,
    optimizer_steps_per_epoch,
    step_after_validation,
    step_on_interval,
)
from .deep_supervision import DeepSupervisionLoss
from .losses import label_map_dice_ce
from .metrics import dice_from_counts, dice_present, first_of_each_case, overlap_counts
from .networks import ArchitectureName, build_network
from .windows import Predictor, fixed_batch

OptimizerName = Literal["adamw", "adam", "sgd"]

# Validation Dice is computed from the overlap counts of every rank (gathered, equal on all ranks): Lightning's
# advice to sync it again under DDP does not apply (a mean over 3 equal floats need not return the float).
warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('val/dice")


class SegmentationModule(pl.LightningModule):
    """A 3D segmentation model trained on patches and validated on whole volumes.

    Args:
        architecture: MONAI network by name (`model.networks.ARCHITECTURES`).
        in_channels: image channels (linked from the datamodule).
        out_channels: output channels: classes incl. background, or regions when `multilabel` (linked).
        class_names: names of the foreground classes or regions, for `val/dice/<name>` (linked).
        multilabel: sigmoid outputs for overlapping regions (BraTS) instead of softmax classes (linked).
        roi_size: patch size of training and of sliding-window validation (linked from data.patch_size).
        lr: base learning rate.
        optimizer: adamw, adam, or sgd (momentum 0.99, Nesterov, as nnU-Net).
        weight_decay: optimizer weight decay.
        scheduler: none, reduce_on_plateau, cosine, onecycle or polynomial (`schedules.plans.PLANS`).
        schedule: the schedules' parameters (`--model.schedule.plateau_patience` ...; see
            `schedules.plans.ScheduleOptions`), kept as a plain dict in the hyper-parameters.
        sw_batch_size: patches per forward pass in sliding-window inference.
        sw_overlap: overlap of sliding-window patches.
        network_kwargs: overrides of the network constructor's defaults (e.g. `{channels: [8, 16, 32]}`).
        compile: compile the network in place with `torch.compile` (`nn.Module.compile`: checkpoint keys stay
            plain, so a compiled run's checkpoint resumes uncompiled and the reverse), for static shapes: one
            graph for training, one for evaluation.
        deep_supervision: train the lower-resolution outputs too, nnU-Net's way (`model.deep_supervision`; DynUNet);
            training only: evaluation, prediction and export use the full-resolution output alone.
    """

    def __init__(
        self,
        architecture: ArchitectureName = "unet",
        in_channels: int = 1,
        out_channels: int = 2,
        class_names: Optional[Sequence[str]] = None,
        multilabel: bool = False,
        roi_size: Sequence[int] = (96, 96, 96),
        lr: float = 1e-3,
        optimizer: OptimizerName = "adamw",
        weight_decay: float = 1e-5,
        scheduler: ScheduleName = "none",
        schedule: ScheduleOptions = ScheduleOptions(),
        sw_batch_size: int = 2,
        sw_overlap: float = 0.25,
        network_kwargs: Optional[dict] = None,
        compile: bool = False,
        deep_supervision: bool = False,
    ):
        # saved as a plain dict (in checkpoints and hparams.yaml: no pickled class); checked against the fields
        # (rebound, not renamed: save_hyperparameters reads the arguments from this frame)
        schedule = asdict(as_schedule_options(schedule))  # type: ignore[assignment]
        super().__init__()
        self.save_hyperparameters()
        self.class_names = list(class_names) if class_names else self._default_class_names()
        self.net = build_network(architecture, in_channels, out_channels, roi_size, deep_supervision,
                                 **(network_kwargs or {}))
        if compile:  # in place: the state dict has no `_orig_mod.` prefix. Static shapes: a training and an
            # evaluation graph, each of one batch size (sliding windows are padded to sw_batch_size: `model.windows`)
            self.net.compile(dynamic=False)
        self.loss = DiceCELoss(
            to_onehot_y=not multilabel, softmax=not multilabel, sigmoid=multilabel, squared_pred=False
        )
        # with deep supervision, the loss over the stacked training outputs of every resolution
        self.deep_supervision = DeepSupervisionLoss.of_network(self.loss, self.net) if deep_supervision else None
        self._validated: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (case index, overlap counts, loss)

    # set by `seg test|predict` for ensembles and mirror TTA (`model.ensemble.VolumeInference`); None: this model
    volume_inference: Optional[Callable[[SegmentationModule, torch.Tensor], torch.Tensor]] = None

    @property
    @override
    def hparams(self) -> AttributeDict:
        """The saved hyper-parameters, typed as what `save_hyperparameters` stores: fields read as attributes."""
        return cast(AttributeDict, super().hparams)

    def _default_class_names(self) -> list[str]:
        first = 0 if self.hparams.multilabel else 1
        return [f"class{i}" for i in range(first, self.hparams.out_channels)]

    def schedule_options(self) -> ScheduleOptions:
        """The schedule parameters of this model's hyper-parameters."""
        return ScheduleOptions(**self.hparams.schedule)

    @override
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of patches (a MONAI MetaTensor enters as a plain tensor: cheaper, and compilable)."""
        return self.net(image.as_tensor() if isinstance(image, MetaTensor) else image)

    @override
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """DiceCE loss on a batch of random patches (weighted over the resolutions with deep supervision)."""
        loss = self.training_loss(self(batch["image"]), batch["label"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]),
                 sync_dist=True)  # (reduced across ranks once per epoch)
        return loss

    def training_loss(self, output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss of a training forward's output: DiceCE, or its deep-supervision sum (`model.deep_supervision`)."""
        return self.deep_supervision(output, label) if self.deep_supervision else self.loss(output, label)

    def infer_volume(self, image: torch.Tensor,
                     wrap: Optional[Callable[[Predictor], Predictor]] = None) -> torch.Tensor:
        """Logits for whole volumes by MONAI sliding-window inference over `roi_size` patches; a compiled network
        gets `sw_batch_size` windows in every forward (the last batch padded: one shape; `model.windows`), an
        uncompiled one no padding to compute. `wrap` turns the forward into another window predictor (mirror TTA:
        `model.tta`, whose windows are then blended as it returns them)."""
        forward = wrap(self.forward) if wrap else self.forward
        # MONAI declares tensor, tuple or dict results (as the predictor returns): a tensor here
        return cast(torch.Tensor, sliding_window_inference(
            image,
            roi_size=tuple(self.hparams.roi_size),
            sw_batch_size=self.hparams.sw_batch_size,
            predictor=fixed_batch(forward, self.hparams.sw_batch_size) if self.hparams.compile else forward,
            overlap=self.hparams.sw_overlap,
            mode="gaussian",
        ))

    def predicted_labels(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, X, Y, Z) label maps (softmax classes) or (B, C, X, Y, Z) boolean masks (sigmoid regions)."""
        if self.hparams.multilabel:
            return torch.sigmoid(logits) > 0.5
        return logits.argmax(dim=1)

    def target_labels(self, label: torch.Tensor) -> torch.Tensor:
        """The target in the layout of `predicted_labels`' output."""
        return label > 0.5 if self.hparams.multilabel else label[:, 0].long()

    def case_counts(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """(C, 3) overlap counts of the first case of a batch (`metrics.overlap_counts`)."""
        return overlap_counts(self.predicted_labels(logits)[0], self.target_labels(label)[0],
                              self.hparams.out_channels, self.hparams.multilabel)

    def volume_loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The training loss on a whole volume, without a one-hot copy of the target for softmax classes."""
        return self.loss(logits, label) if self.hparams.multilabel else label_map_dice_ce(logits, label)

    @override
    def on_validation_epoch_start(self) -> None:
        """Start a fresh list of validated cases."""
        self._validated = []

    @override
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Whole-volume loss and per-class overlap counts of one validation case."""
        logits = self.infer_volume(batch["image"])
        # the case's index in the validation split (counted once on any devices); without one, an index unique to
        # this rank and step (no deduplication possible)
        index = int(batch["index"][0]) if "index" in batch else -1 - (batch_idx * self.trainer.world_size
                                                                         + self.global_rank)
        loss = self.volume_loss(logits, batch["label"]).detach().float()
        self._validated.append((index, self.case_counts(logits, batch["label"]), loss))

    @override
    def on_validation_epoch_end(self) -> None:
        """Log the loss, mean and per-class Dice (each case once, on any number of devices), then step the plateau
        schedule with the Dice."""
        indices = torch.tensor([index for index, _, _ in self._validated], dtype=torch.long, device=self.device)
        counts = (torch.stack([counts for _, counts, _ in self._validated]) if self._validated
                  else torch.zeros((0, len(self.class_names), 3), dtype=torch.long, device=self.device))
        losses = (torch.stack([loss for _, _, loss in self._validated]) if self._validated  # (no per-case sync)
                  else torch.zeros(0, device=self.device))
        if self.trainer.world_size > 1:  # every rank joins, also one without cases (fewer cases than ranks)
            indices, counts, losses = (gather_rows(self, rows) for rows in (indices, counts, losses))
        if len(indices) == 0:
            return
        (_, counts), (_, losses) = first_of_each_case(indices, counts), first_of_each_case(indices, losses)
        per_class = dice_from_counts(counts).mean(dim=0)
        mean_dice = per_class.mean()
        if self.trainer.sanity_checking:
            return
        # every rank holds the same gathered values: logged as they are, no further reduction
        self.log("val/loss", losses.mean())
        self.log(MONITOR, mean_dice.float(), prog_bar=True)
        self.log(f"{MONITOR}_fg", torch.nanmean(torch.nanmean(dice_present(counts), dim=0)).float())
        for name, value in zip(self.class_names, per_class):
            self.log(f"{MONITOR}/{name}", value.float())
        for config in self.trainer.lr_scheduler_configs:
            step_after_validation(config.scheduler, float(mean_dice))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax) or region probabilities (sigmoid) of logits."""
        return torch.sigmoid(logits) if self.hparams.multilabel else torch.softmax(logits, dim=1)

    def volume_probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Probabilities of whole volumes: this model's, or those `volume_inference` averages (ensemble, TTA)."""
        if self.volume_inference is not None:
            return self.volume_inference(self, image)
        return self.probabilities(self.infer_volume(image))

    @override
    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """Probabilities of one whole test case; `training.evaluation.NativeSpaceScorer` scores them in the input's
        geometry against its label file."""
        return self.volume_probabilities(batch["image"])

    @override
    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """Probabilities of one whole volume (discretised in the input's geometry by `training.prediction`)."""
        return self.volume_probabilities(batch["image"])

    @override
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """The optimizer and the schedule, planned over the trainer's `max_epochs` (in optimizer steps with
        `interval: step`, or when a warm-up is given in epochs and stepped per step)."""
        optimizer = self._build_optimizer()
        options = self.schedule_options()
        per_epoch = optimizer_steps_per_epoch(self.trainer) if options.interval == "step" else 1
        scheduler = build_schedule(self.hparams.scheduler, optimizer, self.trainer.max_epochs, options, per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": lightning_scheduler_config(scheduler)}

    def _build_optimizer(self) -> torch.optim.Optimizer:
        params, lr, decay = self.parameters(), self.hparams.lr, self.hparams.weight_decay
        if self.hparams.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=0.99, nesterov=True, weight_decay=decay)
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=decay)
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)

    @override
    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Lightning's step at each epoch end (or optimizer step); the plateau schedule is stepped after
        validation instead."""
        step_on_interval(scheduler)


def gather_rows(module: pl.LightningModule, rows: torch.Tensor) -> torch.Tensor:
    """The rows of every rank, concatenated in rank order (ranks may hold different numbers of rows)."""
    # (Lightning declares a collection's result, as all_gather takes collections too: a tensor gives a tensor)
    counts = cast(torch.Tensor, module.all_gather(torch.tensor(len(rows), device=rows.device))).reshape(-1).tolist()
    padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[:len(rows)] = rows
    gathered = cast(torch.Tensor, module.all_gather(padded))  # (world size, most rows, ...)
    return torch.cat([gathered[rank, :count] for rank, count in enumerate(counts)])


def as_schedule_options(schedule: Union[ScheduleOptions, dict, None]) -> ScheduleOptions:
    """`schedule` as ScheduleOptions: given as such (the CLI), as a dict (a checkpoint's hparams), or the defaults."""
    if schedule is None:
        return ScheduleOptions()
    if isinstance(schedule, ScheduleOptions):
        return schedule
    unknown = sorted(set(schedule) - set(ScheduleOptions.__dataclass_fields__))
    if unknown:
        raise SegError(f"--model.schedule: unknown option(s) {', '.join(unknown)}; valid: "
                       f"{', '.join(ScheduleOptions.__dataclass_fields__)}")
    return ScheduleOptions(**schedule)
