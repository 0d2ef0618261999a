"""Time estimates measured on the user's hardware and data, not guessed.

`seg estimate --config X [overrides]` (`app.commands.estimate`) builds the configured
model and data, prepares the data (caching time reported on its own), then runs real training
steps and one validation pass with Lightning on the configured accelerator:
a few warm-up steps (cuDNN autotuning, allocator, worker start) are not timed,
the next steps are. Seconds per epoch = seconds per step x steps per epoch +
seconds per validation case x validation cases (scaled by how often validation
runs); the projection is that times `max_epochs`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..core.formatting import format_duration
from .timer import StepTimer, measuring_trainer

WARMUP_STEPS = 2
TIMED_STEPS = 5


@dataclass
class Estimate:
    """The measured figures and the projection made from them."""

    preparation_seconds: float
    seconds_per_step: float
    steps_per_epoch: int
    timed_steps: int
    seconds_per_validation_case: float
    validation_cases: int
    validation_every_n_epochs: int
    max_epochs: int
    device: str = "cpu"  # what was measured: one device of this kind
    configured_devices: str = "1"  # what the run will use (`--trainer.devices`)

    @property
    def seconds_per_epoch(self) -> float:
        """Training steps plus (amortised) validation of one epoch."""
        validation = self.seconds_per_validation_case * self.validation_cases / self.validation_every_n_epochs
        return self.seconds_per_step * self.steps_per_epoch + validation

    @property
    def projected_seconds(self) -> float:
        """The whole run: every epoch, plus preparing (caching) the data once."""
        return self.seconds_per_epoch * self.max_epochs + self.preparation_seconds

    def as_dict(self) -> dict[str, Any]:
        """All figures, measured and derived (for `--json`)."""
        return {
            **asdict(self), "seconds_per_epoch": self.seconds_per_epoch, "projected_seconds": self.projected_seconds
        }

    def text(self) -> str:
        """The estimate with the figures it was based on, for the console."""
        return "\n".join([
            f"data preparation (caching, checks): {self.preparation_seconds:.1f} s, once",
            f"training: {self.seconds_per_step:.3f} s per step (mean of {self.timed_steps} steps after "
            f"{WARMUP_STEPS} warm-up steps) x {self.steps_per_epoch} steps per epoch",
            f"validation: {self.seconds_per_validation_case:.2f} s per case x {self.validation_cases} cases, "
            f"every {self.validation_every_n_epochs} epoch(s)",
            f"estimate: {self.seconds_per_epoch:.1f} s per epoch; {self.max_epochs} epochs: "
            f"{format_duration(self.projected_seconds)}",
            f"measured on one device ({self.device})" + ("" if self.configured_devices in ("1", "auto") else
                f"; the run asks for --trainer.devices {self.configured_devices}, which splits each epoch's steps "
                f"among them: not measured here"),
        ])


def measure(model, datamodule, trainer_config: dict, validation_cases: int = 2) -> Estimate:
    """Run warm-up + timed training steps and a short validation with the configured trainer settings."""
    started = time.perf_counter()
    datamodule.setup("fit")
    preparation = time.perf_counter() - started
    steps_per_epoch = len(datamodule.train_dataloader())
    timer = StepTimer()
    trainer = measuring_trainer(
        trainer_config,
        [timer],
        max_epochs=1,
        limit_train_batches=min(steps_per_epoch, WARMUP_STEPS + TIMED_STEPS),
        limit_val_batches=min(validation_cases, len(datamodule.val_cases)),
    )
    trainer.fit(model, datamodule=datamodule)
    timed = timer.step_seconds(WARMUP_STEPS) or timer.step_seconds(0)
    return Estimate(
        preparation_seconds=preparation,
        seconds_per_step=sum(timed) / len(timed),
        steps_per_epoch=steps_per_epoch,
        timed_steps=len(timed),
        seconds_per_validation_case=sum(timer.validation_seconds) / max(1, len(timer.validation_seconds)),
        validation_cases=len(datamodule.val_cases),
        validation_every_n_epochs=int(trainer_config.get("check_val_every_n_epoch") or 1),
        max_epochs=int(trainer_config.get("max_epochs") or 1000),
        device=str(trainer.strategy.root_device),
        configured_devices=str(trainer_config.get("devices") or "1"),
    )
