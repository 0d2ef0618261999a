"""Where a training step's time goes, measured side by side on the user's machine and data (`seg bench`).

Five figures, in one process:
(a) the data pipeline alone: patches/s per cache mode, with one worker and with the configured workers;
(b) the network alone on synthetic tensors on the device: forward + backward + optimizer step, the
    configured precision (and compile) — the ceiling no pipeline can pass;
(c) the Lightning loop alone (no seg callbacks, logger or checkpoints);
(d) `seg fit`'s trainer: the same loop with seg's callbacks, TensorBoard logger and checkpointing (into a temporary
    folder; no progress bar, no validation), so that (d)/(c) is what seg's callbacks cost;
    (c) and (d): wall time after the warm-up steps, epoch ends (checkpoints) included;
(e) a plain MONAI + PyTorch loop doing the same work on the same loader.
(c), (d) and (e) are interleaved (plain, Lightning, seg fit, plain) so that a machine that speeds up or slows down
affects all of them. Every figure trains the configured module itself, not a copy: a copy of a compiled network
comes back uncompiled (`nn.Module.__getstate__` drops the compiled forward). Its weights move from figure to
figure; its speed does not.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from ..core.log import log
from ..training.defaults import accelerator_defaults, with_default_checkpoints, with_default_logging, with_seg_plugins
from ..training.preemption import Preemption
from ..training.rank_agreement import RankAgreement
from .timer import StepTimer, measuring_trainer, synchronise

WARMUP = 2  # steps or batches not timed: worker start, cuDNN autotuning, compilation


@dataclass
class BenchFigures:
    """Every measured figure of one `seg bench` run (samples = patches)."""

    device: str
    precision: str
    compiled: bool
    batch_size: int
    data_patches_per_second: dict[str, float] = field(default_factory=dict)
    preparation_seconds: dict[str, float] = field(default_factory=dict)
    ceiling_samples_per_second: float = 0.0
    lightning_samples_per_second: float = 0.0  # the Lightning loop without seg's callbacks
    fit_samples_per_second: float = 0.0  # seg fit's trainer: the same loop with seg's callbacks, logger, checkpoints
    plain_samples_per_second: float = 0.0

    @property
    def fit_over_ceiling(self) -> float:
        """How much of the network's possible rate `seg fit` reaches (1.0: never waits on data)."""
        return self.fit_samples_per_second / self.ceiling_samples_per_second

    @property
    def fit_over_plain(self) -> float:
        """`seg fit`'s rate over the plain loop's on the same data (below 1.0: what seg + Lightning cost)."""
        return self.fit_samples_per_second / self.plain_samples_per_second

    @property
    def fit_over_lightning(self) -> float:
        """`seg fit`'s rate over the bare Lightning loop's (below 1.0: what seg's callbacks cost per step)."""
        return self.fit_samples_per_second / self.lightning_samples_per_second

    def verdict(self) -> str:
        """The figures in words: is the accelerator starved, and does seg cost anything over a plain loop."""
        waiting = 1.0 - self.fit_over_ceiling
        words = [f"the {self.device} waits {waiting:.0%} of the time on data" if waiting > 0.1 else
                 f"the {self.device} is kept busy ({self.fit_over_ceiling:.0%} of the network's own rate)"]
        if waiting > 0.1:
            words.append("try --data.cache gpu (or store) and more --data.num_workers")
        cost = 1.0 - self.fit_over_plain
        words.append(f"seg fit costs {cost:.0%} over a plain loop" if cost > 0.05 else
                     f"seg fit runs at {self.fit_over_plain:.0%} of a plain loop's rate")
        callbacks = 1.0 - self.fit_over_lightning
        if callbacks > 0.05:
            words.append(f"seg's callbacks and checkpoints cost {callbacks:.0%} over the bare Lightning loop")
        return "; ".join(words)

    def as_dict(self) -> dict[str, Any]:
        """All figures and ratios (for `--json`)."""
        return {**asdict(self), "fit_over_ceiling": self.fit_over_ceiling, "fit_over_plain": self.fit_over_plain,
                "fit_over_lightning": self.fit_over_lightning, "verdict": self.verdict()}

    def data_as_dict(self) -> dict[str, Any]:
        """The data figures alone (`--data-only --json`)."""
        keep = ("device", "batch_size", "data_patches_per_second", "preparation_seconds")
        return {key: value for key, value in asdict(self).items() if key in keep}

    def data_rows(self) -> list[tuple[str, str]]:
        """(name, value) rows of the data pipeline figures."""
        rows = [(f"data: {name}", f"{rate:,.1f} patches/s") for name, rate in self.data_patches_per_second.items()]
        return rows + [(f"preparation: {name}", f"{seconds:,.1f} s once") for name, seconds in
                       self.preparation_seconds.items()]

    def data_table(self) -> str:
        """The data figures alone as a console table."""
        return _aligned(self.data_rows())

    def table(self) -> str:
        """The figures as a console table."""
        rows = self.data_rows() + [
            (f"network ceiling ({self.precision}{', compiled' if self.compiled else ''})",
             f"{self.ceiling_samples_per_second:,.1f} samples/s"),
            ("Lightning loop (no seg callbacks)", f"{self.lightning_samples_per_second:,.1f} samples/s"),
            ("seg fit (seg's callbacks, logger, checkpoints)", f"{self.fit_samples_per_second:,.1f} samples/s"),
            ("plain MONAI + PyTorch loop", f"{self.plain_samples_per_second:,.1f} samples/s"),
            ("fit / ceiling", f"{self.fit_over_ceiling:.2f}"),
            ("fit / plain loop", f"{self.fit_over_plain:.2f}"),
            ("fit / Lightning loop", f"{self.fit_over_lightning:.2f}"),
        ]
        return _aligned(rows) + f"\nverdict: {self.verdict()}"


def _aligned(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def as_plain_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A MONAI MetaTensor as a plain tensor (as seg's module passes it to the network); others unchanged."""
    return tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor


def autocast(device: torch.device, precision: str):
    """The autocast context of `precision` on `device` (none for full precision)."""
    if "bf16" in precision:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if "16" in precision and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def timed_rate(steps: Iterable[int], count: int, device: torch.device) -> float:
    """Items per second over `steps` (each yields how many items it handled), the first WARMUP not timed."""
    done, started = 0, None
    for index, items in enumerate(steps):
        if index == WARMUP - 1:
            synchronise(device)
            started = time.perf_counter()
        elif index >= WARMUP:
            done += items
        if index + 1 >= WARMUP + count:
            break
    synchronise(device)
    assert started is not None, f"fewer than {WARMUP} steps"
    return done / (time.perf_counter() - started)


Finish = Callable[[dict, int], dict]  # the datamodule's `on_after_batch_transfer`


def on_device(batch: dict, device: torch.device, finish: Finish) -> dict:
    """`batch` moved to `device` and finished there, as Lightning hands it to the training step."""
    moved = {key: as_plain_tensor(value).to(device) if isinstance(value, torch.Tensor) else value
             for key, value in batch.items()}
    return finish(moved, 0)


def data_rate(loader: Iterable[dict], batches: int, device: torch.device, finish: Finish) -> float:
    """Patches per second the loader delivers onto `device`, finished there (loading, augmenting, transfer)."""
    delivered = (len(on_device(batch, device, finish)["image"]) for batch in _cycle(loader))
    return timed_rate(delivered, batches, device)


def needs_grad_scaler(device: torch.device, precision: str) -> bool:
    """Whether a step under `precision` needs a gradient scaler: float16 autocast (CUDA), as Lightning's
    `16-mixed` scales; bfloat16 has float32's range and needs none."""
    return "16" in precision and "bf16" not in precision and device.type == "cuda"


def training_steps(net: torch.nn.Module, loss_fn: Callable, batches: Iterable[dict], device: torch.device,
                   precision: str, finish: Finish) -> Iterable[int]:
    """Forward, loss, backward and AdamW step for each batch (the loss scaled under float16, as Lightning does);
    yields the batch's sample count."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, precision))
    net.train()
    for batch in batches:
        batch = on_device(batch, device, finish)
        image, label = batch["image"], batch["label"]
        with autocast(device, precision):
            loss = loss_fn(net(image), label)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        yield len(image)


def network_ceiling(model, batch: dict, device: torch.device, precision: str, steps: int, finish: Finish) -> float:
    """Samples/s of the network alone (`model.net` itself, compiled if it is): one batch's shapes as tensors
    already on the device, repeated."""
    net = model.net.to(device)
    label = on_device(batch, device, finish)["label"]
    image = torch.randn((len(label), *batch["image"].shape[1:]), device=device)
    repeated = ({"image": image, "label": label} for _ in range(WARMUP + steps))
    steps_run = training_steps(net, model.training_loss, repeated, device, precision, lambda b, _: b)
    return timed_rate(steps_run, steps, device)


def plain_loop_rate(model, loader: Iterable[dict], device: torch.device, precision: str, steps: int,
                    finish: Finish) -> float:
    """Samples/s of a plain PyTorch loop over the same loader, network (`model.net` itself, compiled if it is)
    and loss (wall time, loading included)."""
    net = model.net.to(device)
    steps_run = training_steps(net, model.training_loss, _cycle(loader), device, precision, finish)
    return timed_rate(steps_run, steps, device)


def _cycle(loader: Iterable[dict]) -> Iterable[dict]:
    while True:
        yield from loader


def lightning_rate(model, datamodule, trainer_config: dict, steps: int) -> float:
    """Samples/s of the bare Lightning loop (the configured precision; no seg callbacks, logger, checkpoints or
    validation), training `model` itself (`run_rate`)."""
    timer = StepTimer()
    trainer = measuring_trainer(trainer_config, [timer], max_steps=WARMUP + steps, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    return run_rate(timer)


def seg_callbacks() -> list[Callback]:
    """The callbacks `seg fit` adds to every run (without its progress bar, a display, and the callbacks that
    only a run directory or a request turns on): preemption, rank agreement, checkpoints, epoch timer, summary and
    learning-rate monitor."""
    return with_default_logging(with_default_checkpoints([Preemption(), RankAgreement()]), progress_bar=False)


def fit_rate(model, datamodule, trainer_config: dict, steps: int) -> float:
    """Samples/s of `seg fit`'s trainer: the Lightning loop with seg's callbacks, TensorBoard logger, atomic
    checkpoint writer and checkpoints (written into a temporary folder, their lines not printed), no validation;
    trains `model` itself (`run_rate`)."""
    timer = StepTimer()
    logs = {"log_every_n_steps": trainer_config["log_every_n_steps"]} if "log_every_n_steps" in trainer_config else {}
    with tempfile.TemporaryDirectory(prefix="seg-bench-") as root, quiet_seg_log(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not find the monitored key")  # no validation: by design
        trainer = Trainer(**measured_settings(trainer_config), **logs, devices=1, num_sanity_val_steps=0,
                          default_root_dir=root, logger=TensorBoardLogger(root, name="bench", default_hp_metric=False),
                          callbacks=[timer, *seg_callbacks()], plugins=with_seg_plugins(None, on_slurm=False),
                          enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                          max_steps=WARMUP + steps, limit_val_batches=0)
        trainer.fit(model, datamodule=datamodule)
    return run_rate(timer)


def run_rate(timer: StepTimer) -> float:
    """Samples/s from the end of the WARMUP steps to the end of training: every later step and every epoch's end
    (its checkpoints and logging: per epoch, not per step) in the wall time."""
    seconds = timer.train_ended - timer.step_ends[WARMUP - 1]
    return sum(timer.samples[WARMUP:]) / seconds if seconds > 0 else 0.0


@contextmanager
def quiet_seg_log() -> Iterator[None]:
    """seg's own lines off (warnings still shown): the measured run's summary is not the user's run."""
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def measured_settings(trainer_config: dict) -> dict:
    """The configured accelerator, precision and cuDNN setting, seg's CUDA defaults filled in."""
    settings = trainer_settings(trainer_config)
    return {key: settings[key] for key in ("accelerator", "precision", "benchmark") if settings.get(key) is not None}


def trainer_settings(trainer_config: dict) -> dict:
    """The trainer configuration with seg's accelerator defaults filled in (as `seg fit` would run)."""
    return {**trainer_config, **accelerator_defaults(trainer_config, torch.cuda.is_available())}


def device_of(trainer_config: dict) -> torch.device:
    """The device `seg fit` would train on with this configuration."""
    wanted = str(trainer_config.get("accelerator") or "auto")
    return torch.device("cuda" if wanted in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")
