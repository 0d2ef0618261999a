"""The LR range test's short run: Lightning's Tuner over seg's real model, data and trainer settings, nothing saved.

Lightning's finder sweeps the LR exponentially over real training steps (seg's own `training_step`: its loss, deep
supervision, precision, gradient accumulation and devices), then restores the model and optimizer from a temporary
`.lr_find_*.ckpt` it writes in the trainer's root folder: here a scratch folder of its own, removed afterwards, so
no file remains. The raw loss of every step is recorded here (Lightning keeps only its own smoothed copy); the
suggestion is `measure.lr_find.suggest`'s.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.tuner import Tuner

from ..training.defaults import accelerator_defaults
from .lr_find import DIVERGED

# the trainer settings that change what a training step computes (everything else: logging, checkpoints, seg's
# callbacks, validation, is left out)
STEP_SETTINGS = ("accelerator", "precision", "benchmark", "deterministic", "devices", "num_nodes", "strategy",
                 "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")
SCRATCH_PATTERN = ".lr_find_*.ckpt"  # Lightning's temporary checkpoint


@dataclass
class RangeTest:
    """What the sweep measured: one LR and one raw loss per optimizer step, and the batch it stepped on."""

    lrs: list[float]
    losses: list[float]
    batch_size: int
    devices: int
    num_nodes: int
    accumulate: int
    is_global_zero: bool = True
    lightning_suggestion: Optional[float] = None  # Lightning's own rule, for comparison
    notes: list[str] = field(default_factory=list)

    @property
    def effective_batch(self) -> int:
        """Samples per optimizer step: batch size x devices x nodes x accumulated batches."""
        return self.batch_size * self.devices * self.num_nodes * self.accumulate


class RecordedLosses:
    """Records every loss the module's `training_step` returns, while installed on the module (an instance
    attribute over the method, removed again by `uninstall`)."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.losses: list[float] = []
        step: Callable[..., Any] = module.training_step

        def recording(*args: Any, **kwargs: Any) -> Any:
            out = step(*args, **kwargs)
            loss = out.get("loss") if isinstance(out, dict) else out
            self.losses.append(float(loss.detach().float()) if isinstance(loss, torch.Tensor) else float("nan"))
            return out

        module.training_step = recording

    def uninstall(self) -> None:
        """Put the class's method back."""
        with contextlib.suppress(AttributeError):  # (the instance's attribute goes; the class's method stays)
            delattr(self.module, "training_step")

    def per_step(self, accumulate: int, steps: int) -> list[float]:
        """The mean loss of each optimizer step's `accumulate` batches, for the first `steps` steps."""
        windows = [self.losses[start:start + accumulate] for start in range(0, len(self.losses), accumulate)]
        return [sum(w) / len(w) for w in windows if len(w) == accumulate][:steps]


@contextlib.contextmanager
def scratch_root(num_nodes: int) -> Iterator[Path]:
    """The trainer's root folder for the finder's temporary checkpoint: a fresh temporary folder on one machine
    (removed afterwards); over several nodes the working folder (the file must be read by every node), where any
    `.lr_find_*.ckpt` the sweep left is removed afterwards."""
    if num_nodes <= 1:
        folder = Path(tempfile.mkdtemp(prefix="seg-lr-find-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    here = Path.cwd()
    before = set(here.glob(SCRATCH_PATTERN))
    try:
        yield here
    finally:
        for left in set(here.glob(SCRATCH_PATTERN)) - before:
            left.unlink(missing_ok=True)


def sweep_trainer(trainer_config: dict, root: Path, steps: int) -> Trainer:
    """A trainer with the configured step settings (seg's CUDA defaults filled in, as `seg fit` runs), no logger,
    no checkpoints, no callbacks, no validation, root folder `root`, and epochs enough for `steps`."""
    settings = {**trainer_config, **accelerator_defaults(trainer_config, torch.cuda.is_available())}
    keep = {key: settings[key] for key in STEP_SETTINGS if settings.get(key) is not None}
    epochs = max(int(trainer_config.get("max_epochs") or 0), steps) + 1  # (the discarded schedule's horizon too)
    return Trainer(**keep, max_epochs=epochs, check_val_every_n_epoch=epochs + 1, num_sanity_val_steps=0,
                   logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[], default_root_dir=str(root),
                   use_distributed_sampler=False)  # (seg's samplers shard by rank themselves)


def range_test(model: Any, datamodule: Any, trainer_config: dict, min_lr: float, max_lr: float,
               steps: int) -> RangeTest:
    """Sweep the LR from `min_lr` to `max_lr` exponentially over `steps` optimizer steps of seg's own training step
    (stopping early where the loss diverges); the model and its optimizer are restored afterwards and no file
    remains."""
    recorded = RecordedLosses(model)
    try:
        with scratch_root(int(trainer_config.get("num_nodes") or 1)) as root:
            trainer = sweep_trainer(trainer_config, root, steps)
            finder = Tuner(trainer).lr_find(model, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr,
                                            num_training=steps, mode="exponential",
                                            early_stop_threshold=DIVERGED, update_attr=False)
    finally:
        recorded.uninstall()
    lrs = [float(lr) for lr in (finder.results.get("lr") or [])] if finder is not None else []
    accumulate = int(trainer.accumulate_grad_batches)
    losses = recorded.per_step(accumulate, len(lrs))
    lightning = finder.suggestion() if finder is not None and len(lrs) > 1 else None
    return RangeTest(lrs[:len(losses)], losses, int(datamodule.hparams.batch_size), int(trainer.num_devices),
                     int(trainer.num_nodes), accumulate, trainer.is_global_zero,
                     float(lightning) if lightning is not None else None)
