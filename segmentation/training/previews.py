"""Image previews in TensorBoard: one validation case's slices with ground truth and prediction.

`ValidationPreviews` logs, every N epochs (and after the last one), three images
`preview/axial`, `preview/coronal`, `preview/sagittal`. Each is three panels side
by side: the image (first channel, windowed to its 1st-99th percentile), the
ground truth over it and the prediction over it, one colour per class or region
(filled at 45% opacity, outlined at full colour). The slices pass through the
label's centre of mass (the volume's middle when it has no foreground). Volumes
are RAS after preprocessing; panels are shown in radiological convention
(patient's right on the left, anterior and superior up).
"""

from __future__ import annotations

import colorsys
from typing import Optional, Sequence

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override

from ..core.internals import logging_step
from ..core.log import log

PLANES = ("axial", "coronal", "sagittal")
GAP = 2  # pixels between panels
GAP_GREY = 96
FILL_OPACITY = 0.45
BASE_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                (145, 30, 180), (70, 240, 240), (240, 50, 230)]


def class_colours(count: int) -> np.ndarray:
    """`count` distinct RGB colours (uint8): eight fixed ones, then golden-angle hues."""
    colours: list[tuple[int, ...]] = list(BASE_COLOURS[:count])
    for index in range(len(colours), count):
        hue = (index * 0.618033988749895) % 1.0
        colours.append(tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95)))
    return np.array(colours, dtype=np.uint8).reshape(-1, 3)


def centre_voxel(foreground: np.ndarray) -> tuple[int, ...]:
    """The rounded centre of mass of a (X, Y, Z) mask, or the volume's middle when it is empty."""
    total = foreground.sum()
    if not total:
        return tuple(s // 2 for s in foreground.shape)
    centre = []
    for axis, size in enumerate(foreground.shape):
        profile = foreground.sum(axis=tuple(a for a in range(3) if a != axis))
        centre.append(int(round(float((profile * np.arange(size)).sum() / total))))
    return tuple(centre)


def plane_slice(volume: np.ndarray, plane: str, centre: Sequence[int]) -> np.ndarray:
    """The 2D display slice of a (..., X, Y, Z) RAS volume: rows top to bottom, columns left to right."""
    x, y, z = centre
    if plane == "axial":  # (X, Y) -> rows anterior..posterior, columns patient right..left
        return np.flip(np.swapaxes(volume[..., :, :, z], -1, -2), axis=(-2, -1))
    if plane == "coronal":  # (X, Z) -> rows superior..inferior, columns right..left
        return np.flip(np.swapaxes(volume[..., :, y, :], -1, -2), axis=(-2, -1))
    if plane == "sagittal":  # (Y, Z) -> rows superior..inferior, columns posterior..anterior
        return np.flip(np.swapaxes(volume[..., x, :, :], -1, -2), axis=-2)
    raise ValueError(f"unknown plane {plane!r}; one of {PLANES}")


def window(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Grey values (uint8 RGB, H x W x 3) of `image` windowed to [low, high]."""
    scaled = np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)
    grey = (scaled * 255).round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2D mask with a 4-neighbour outside it (the contour)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay(grey: np.ndarray, masks: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """`grey` (H, W, 3) with each of `masks` (K, H, W) filled and outlined in its colour.

    Larger masks are painted first, so nested regions (BraTS TC inside WT) stay visible.
    """
    out = grey.astype(np.float32)
    for index in np.argsort([-m.sum() for m in masks], kind="stable"):
        mask = masks[index]
        if not mask.any():
            continue
        colour = colours[index].astype(np.float32)
        out[mask] = (1 - FILL_OPACITY) * out[mask] + FILL_OPACITY * colour
        out[outline(mask)] = colour
    return out.round().astype(np.uint8)


def masks_2d(labels: np.ndarray, count: int) -> np.ndarray:
    """(K, H, W) masks of a 2D slice: of a label map (values 1..K) or of (K, H, W) region masks."""
    if labels.ndim == 3:
        return labels.astype(bool)
    return labels[None] == np.arange(1, count + 1)[:, None, None]


def render_planes(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, count: int) -> dict[str, np.ndarray]:
    """{plane: H x W x 3 uint8 panels image | truth | prediction} of one case.

    `image` is (X, Y, Z). `truth` and `prediction` are (X, Y, Z) label maps (0
    background, 1..`count` the classes) or (`count`, X, Y, Z) masks of overlapping
    regions. Masks are made per slice only, so 100+ classes cost no memory.
    """
    centre = centre_voxel(np.asarray(truth > 0 if truth.ndim == 3 else truth.any(axis=0)))
    slices = {plane: plane_slice(image, plane, centre) for plane in PLANES}
    low, high = np.percentile(np.concatenate([s.ravel() for s in slices.values()]), [1, 99])
    colours = class_colours(count)
    rendered = {}
    for plane, image_slice in slices.items():
        grey = window(image_slice, low, high)
        panels = [grey, *(overlay(grey, masks_2d(plane_slice(labels, plane, centre), count), colours)
                          for labels in (truth, prediction))]
        gap = np.full((grey.shape[0], GAP, 3), GAP_GREY, dtype=np.uint8)
        rendered[plane] = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return rendered


class ValidationPreviews(Callback):
    """Logs the first validation case's slices (image, truth, prediction) to TensorBoard every N epochs.

    At the end of a validation whose epoch reaches a multiple of N, and once after
    the last validated epoch of a fit (the last epoch, or where early stopping or
    max_steps ended it). Global rank 0 only; tags `preview/<plane>`, at the step of that
    validation's `val/dice`.
    """

    def __init__(self, every_n_epochs: int):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self._last_validated: Optional[int] = None
        self._last_previewed: Optional[int] = None
        self._step = 0  # the logging step of the last validation (that of its val/dice)
        self._warned = False

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        """Previews are due from the (possibly resumed) first epoch on."""
        self._last_validated = trainer.current_epoch - 1
        self._last_previewed = None

    @override
    def on_validation_end(self, trainer, pl_module) -> None:
        """Preview when a multiple of N epochs was passed since the previous validation."""
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or self._last_validated is None:
            return
        epoch, previous = trainer.current_epoch, self._last_validated
        self._last_validated = epoch
        self._step = logging_step(trainer)
        if (epoch + 1) // self.every_n_epochs > (previous + 1) // self.every_n_epochs:
            self.log_preview(trainer, pl_module)

    @override
    def on_train_end(self, trainer, pl_module) -> None:
        """The last validated epoch's preview, if it was not logged already (the weights are still those)."""
        last = self._last_validated
        if last is not None and last >= 0 and self._last_previewed != last:
            self.log_preview(trainer, pl_module)

    def log_preview(self, trainer, pl_module) -> None:
        """Infer the first validation case and add one image per plane to every TensorBoard logger."""
        self._last_previewed = self._last_validated
        if not trainer.is_global_zero:
            return
        writers = [lg.experiment for lg in trainer.loggers if hasattr(getattr(lg, "experiment", None), "add_image")]
        dataset = getattr(trainer.datamodule, "val_set", None) if trainer.datamodule is not None else None
        if not writers or dataset is None or len(dataset) == 0:
            if not self._warned:
                log.warning("--preview_every_n_epochs: no TensorBoard logger or no validation case; no previews")
                self._warned = True
            return
        rendered = render_planes(*self.predict_case(trainer, pl_module, dataset[0]), count=len(pl_module.class_names))
        for writer in writers:
            for plane, picture in rendered.items():
                writer.add_image(f"preview/{plane}", picture, self._step, dataformats="HWC")
            writer.flush()

    @staticmethod
    def predict_case(trainer, pl_module, case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, truth, prediction) of one preprocessed case: the first channel (X, Y, Z), and label maps
        (X, Y, Z) of softmax classes or (K, X, Y, Z) masks of sigmoid regions."""
        image = torch.as_tensor(case["image"]).float()
        label = torch.as_tensor(case["label"])
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad(), trainer.precision_plugin.val_step_context():
                logits = pl_module.infer_volume(image[None].to(pl_module.device)).float()
                prediction = pl_module.predicted_labels(logits)[0].cpu()
        finally:
            pl_module.train(was_training)
        truth = pl_module.target_labels(label[None])[0]  # the same layout: label maps, or region masks
        if not pl_module.hparams.multilabel:
            truth, prediction = truth.to(torch.int16), prediction.to(torch.int16)
        return image[0].numpy(), truth.numpy(), prediction.numpy()
