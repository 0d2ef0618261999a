"""Time estimates of a whole `seg fit` run, measured on the user's hardware and data, not guessed.

`seg estimate --config X [overrides]` (`app.commands.estimate`) builds the configured model and data as
`seg fit` does, prepares the data, then runs 2 untimed warm-up and 5 timed training steps (over several epochs
when an epoch is shorter) and a short validation (1 warm-up and 2 timed cases) with Lightning on the configured
accelerator, and writes one checkpoint. A step or case is timed from the end of the one before, so waiting for
its data and moving it to the device count (`timer.StepTimer`). The projection is the whole run as `seg batch`
times it:

    once:      start-up (imports, config, model) + data preparation + trainer start and stop
               + the warm-up steps' and case's extra time + the process's start and exit around seg's code
    per epoch: seconds per step x steps per epoch + seconds per validation case x validation cases
               (scaled by how often validation runs) + the epoch's own overhead (loops, hooks, metrics)
               + checkpoint writes (epoch=E, last, best)
    run:       once + per epoch x max_epochs

A short run is mostly the once part (on a 2-core CPU the imports alone take ~5 s): leaving it out made a 2-epoch
run's estimate 0.6 s against 7.5 s actual. The process's start and exit cannot be timed from inside it:
`seg batch` measures them around the estimate's own process (`outside_seconds`; 0 when `seg estimate` runs alone).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..core.formatting import format_duration
from ..core.log import log
from ..core.storage import write_atomically

WARMUP_STEPS = 2
TIMED_STEPS = 5
WARMUP_VALIDATION_CASES = 1  # the first case pays autotuning for whole-volume shapes and (compiled) recompiles
TIMED_VALIDATION_CASES = 2
CHECKPOINTS_PER_EPOCH = 3  # seg fit's defaults: epoch=<E>.ckpt, last.ckpt, best.ckpt (when val/dice improved)


@dataclass
class Estimate:
    """The measured figures and the projection made from them (seconds)."""

    preparation_seconds: float
    seconds_per_step: float
    steps_per_epoch: int
    timed_steps: int
    seconds_per_validation_case: float  # the mean after the warm-up case(s), each from the end of the one before
    validation_cases: int
    validation_every_n_epochs: int
    max_epochs: int
    device: str = "cpu"  # what was measured: one device of this kind
    configured_devices: str = "1"  # what the run will use (`--trainer.devices`)
    startup_seconds: float = 0.0  # imports, config, model: from seg's command to the built model and data
    trainer_seconds: float = 0.0  # building the Trainer, its set-up before the first step and its teardown
    warmup_seconds: float = 0.0  # what the warm-up steps and validation case took beyond the timed means, once
    timed_validation_cases: int = 0
    validation_warmup_cases: int = 0  # measured but left out of the per-case mean (0: too few cases to leave out)
    epoch_overhead_seconds: float = 0.0  # an epoch's time beyond its steps and validation cases
    checkpoint_seconds: float = 0.0  # one checkpoint write (weights and optimizer state, fsynced)
    checkpoints_per_epoch: int = 0
    outside_seconds: float = 0.0  # the process's start and exit around seg's code (measured by `seg batch`)

    @classmethod
    def from_dict(cls, figures: dict[str, Any]) -> Estimate:
        """The estimate of `as_dict()`'s figures (the derived ones are recomputed)."""
        return cls(**{f.name: figures[f.name] for f in fields(cls) if f.name in figures})

    @property
    def seconds_per_epoch(self) -> float:
        """Training steps, (amortised) validation, the epoch's overhead and its checkpoint writes."""
        validation = self.seconds_per_validation_case * self.validation_cases / self.validation_every_n_epochs
        return (self.seconds_per_step * self.steps_per_epoch + validation + self.epoch_overhead_seconds
                + self.checkpoint_seconds * self.checkpoints_per_epoch)

    @property
    def once_seconds(self) -> float:
        """What the run pays once, whatever its epochs: start-up, data, trainer, warm-up, process start and exit."""
        return (self.startup_seconds + self.preparation_seconds + self.trainer_seconds + self.warmup_seconds
                + self.outside_seconds)

    @property
    def projected_seconds(self) -> float:
        """The whole run: every epoch plus what is paid once."""
        return self.seconds_per_epoch * self.max_epochs + self.once_seconds

    def as_dict(self) -> dict[str, Any]:
        """All figures, measured and derived (for `--json`)."""
        return {**asdict(self), "seconds_per_epoch": self.seconds_per_epoch, "once_seconds": self.once_seconds,
                "projected_seconds": self.projected_seconds}

    def short(self) -> str:
        """One line for a plan: `7.9s (6.9s once + 2 x 0.48s per epoch)`."""
        return (f"{format_duration(self.projected_seconds)} ({format_duration(self.once_seconds)} once + "
                f"{self.max_epochs} x {self.seconds_per_epoch:.2f}s per epoch)")

    def validation_basis(self) -> str:
        """What the seconds per validation case are the mean of."""
        if self.validation_warmup_cases:
            return f"mean of {self.timed_validation_cases} after {self.validation_warmup_cases} warm-up case"
        return f"mean of {self.timed_validation_cases}, no warm-up case left out: too few cases"

    def text(self) -> str:
        """The estimate with the figures it was based on, for the console."""
        outside = (f"{self.outside_seconds:.1f} s" if self.outside_seconds else
                   "not included (seg batch measures it around this process)")
        return "\n".join([
            f"start-up (imports, config, model): {self.startup_seconds:.1f} s, once",
            f"data preparation (caching, checks): {self.preparation_seconds:.1f} s, once",
            f"trainer set-up and teardown: {self.trainer_seconds:.2f} s; warm-up steps and validation case beyond "
            f"the means: {self.warmup_seconds:.2f} s; once",
            f"process start and exit: {outside}",
            f"training: {self.seconds_per_step:.3f} s per step (mean of {self.timed_steps} steps after "
            f"{WARMUP_STEPS} warm-up steps) x {self.steps_per_epoch} steps per epoch",
            f"validation: {self.seconds_per_validation_case:.2f} s per case ({self.validation_basis()}) x "
            f"{self.validation_cases} cases, every {self.validation_every_n_epochs} epoch(s)",
            f"per epoch besides: {self.epoch_overhead_seconds:.2f} s loops and hooks + {self.checkpoints_per_epoch} "
            f"checkpoint writes x {self.checkpoint_seconds:.2f} s",
            f"estimate: {self.seconds_per_epoch:.2f} s per epoch; {self.max_epochs} epochs: "
            f"{format_duration(self.projected_seconds)} ({format_duration(self.once_seconds)} of it once)",
            f"measured on one device ({self.device})" + ("" if self.configured_devices in ("1", "auto") else
                f"; the run asks for --trainer.devices {self.configured_devices}, which splits each epoch's steps "
                f"among them: not measured here"),
        ])


def measure(model, datamodule, trainer_config: dict, validation_cases: int = TIMED_VALIDATION_CASES,
            startup_seconds: float = 0.0) -> Estimate:
    """Run warm-up + timed training steps and a short validation (a warm-up case + `validation_cases` timed) with
    the configured trainer settings, then time one checkpoint write; `startup_seconds` is what building `model`
    and `datamodule` took (the caller's)."""
    from .timer import StepTimer, measuring_trainer  # (torch: this module's figures stay light for `seg batch`)

    started = time.perf_counter()
    datamodule.setup("fit")
    preparation = time.perf_counter() - started
    steps_per_epoch = len(datamodule.train_dataloader())
    steps = min(steps_per_epoch, WARMUP_STEPS + TIMED_STEPS)
    epochs = math.ceil((WARMUP_STEPS + TIMED_STEPS) / max(1, steps))  # short epochs: enough of them to time steps
    timer = StepTimer()
    building = time.perf_counter()
    trainer = measuring_trainer(
        trainer_config,
        [timer],
        max_epochs=epochs,
        limit_train_batches=steps,
        limit_val_batches=min(WARMUP_VALIDATION_CASES + validation_cases, len(datamodule.val_cases)),
        check_val_every_n_epoch=epochs,  # (validated once, in the last epoch)
    )
    trainer.fit(model, datamodule=datamodule)
    fitted = time.perf_counter()
    checkpointing = trainer_config.get("enable_checkpointing", True) is not False
    return Estimate(
        **timed_figures(timer, epochs),
        preparation_seconds=preparation,
        steps_per_epoch=steps_per_epoch,
        validation_cases=len(datamodule.val_cases),
        validation_every_n_epochs=int(trainer_config.get("check_val_every_n_epoch") or 1),
        max_epochs=int(trainer_config.get("max_epochs") or 1000),
        device=str(trainer.strategy.root_device),
        configured_devices=str(trainer_config.get("devices") or "1"),
        startup_seconds=startup_seconds,
        trainer_seconds=(timer.train_started - building) + (fitted - timer.train_ended),
        checkpoint_seconds=checkpoint_write_seconds(model, trainer, trainer_config) if checkpointing else 0.0,
        checkpoints_per_epoch=CHECKPOINTS_PER_EPOCH if checkpointing else 0,
    )


def mean_after_warmup(seconds: list[float], warmup: int) -> tuple[float, int, float]:
    """The mean of `seconds` after the first `warmup` (of all when there are no more), how many that mean is of,
    and what the warm-up ones took beyond it."""
    timed = seconds[warmup:] or seconds
    mean = sum(timed) / len(timed) if timed else 0.0
    left_out = seconds[: len(seconds) - len(timed)]
    return mean, len(timed), max(0.0, sum(left_out) - mean * len(left_out))


def timed_figures(timer, epochs: int) -> dict[str, Any]:
    """The estimate's figures measured by a `timer.StepTimer` over a run of `epochs` epochs: the means after the
    warm-up steps and validation case, what the warm-ups took beyond them (paid once) and each epoch's time beyond
    its steps and validation."""
    steps = timer.step_seconds(0)
    cases = timer.validation_seconds(0)
    per_step, timed_steps, steps_warmup = mean_after_warmup(steps, WARMUP_STEPS)
    per_case, timed_cases, cases_warmup = mean_after_warmup(cases, WARMUP_VALIDATION_CASES)
    if len(cases) == timed_cases and cases:
        log.info("seg estimate: %d validation case(s) only, none left out as warm-up: the validation time per case "
                 "includes the first case's autotuning and compiling", len(cases))
    return dict(
        seconds_per_step=per_step,
        timed_steps=timed_steps,
        seconds_per_validation_case=per_case,
        timed_validation_cases=timed_cases,
        validation_warmup_cases=len(cases) - timed_cases,
        warmup_seconds=steps_warmup + cases_warmup,
        epoch_overhead_seconds=max(0.0, timer.train_ended - timer.train_started - sum(steps) - sum(cases)) / epochs,
    )


def checkpoint_write_seconds(model, trainer, trainer_config: dict) -> float:
    """Seconds to write one checkpoint's weights and optimizer state as seg does (atomically, fsynced), into a
    temporary folder under the run's root folder (the disk the run will write to), removed afterwards."""
    from ..training.checkpointing import save_to_file

    root = Path(trainer_config.get("default_root_dir") or ".")
    content = {"state_dict": model.state_dict(), "optimizer_states": [o.state_dict() for o in trainer.optimizers]}
    try:
        folder = tempfile.TemporaryDirectory(prefix=".seg-estimate-", dir=root if root.is_dir() else None)
    except OSError:  # a read-only working folder: the run would refuse it; time the system's temporary folder
        folder = tempfile.TemporaryDirectory(prefix=".seg-estimate-")
    with folder as name:
        started = time.perf_counter()
        write_atomically(Path(name) / "estimate.ckpt", lambda partial: save_to_file(content, partial))
        return time.perf_counter() - started
