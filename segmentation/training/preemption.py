"""Preemption: SIGTERM (cloud, Kubernetes, Colab), SIGUSR1 (SLURM's `--signal`) and SIGINT (Ctrl-C) end a fit cleanly.

The signal is noted; the step in progress finishes; at that step's end all ranks agree to stop (one
all-reduce per step, so a signal that reached one rank stops them all at the same step); the exact position
(weights, optimizer, schedule, loop counters, the data sampler's place inside the epoch) is written atomically
as the run's `last.ckpt`; one line says so; the process exits with `PREEMPTED_EXIT` (75, EX_TEMPFAIL: "try
again"), never 0. The run directory gets a `PREEMPTED` marker: the same `seg fit` command run again (a
requeued SLURM job, a re-submitted cloud job) continues that run from that checkpoint, as `--ckpt_path` would;
the marker goes when the run ends normally. Under SLURM, SIGUSR1 also requeues the job (`scontrol requeue`,
rank 0). A signal during validation stops at the epoch's end, after its checkpoints. Further signals while the
checkpoint is written are noted and change nothing; a second Ctrl-C outside the save stops at once
(KeyboardInterrupt), as without seg.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional, Union

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.constants import PREEMPTED_EXIT
from ..core.faults import signal_point
from ..core.log import log
from ..core.storage import write_text_atomically
from .checkpointing import versions_newest_first

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
# what `signal.signal` takes and returns: a function, SIG_DFL or SIG_IGN, or None (a handler not set from Python)
SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]
MARKER = "PREEMPTED"  # in the run directory while the run waits to be continued: the checkpoint to continue from


def preempted_checkpoint(run: Path) -> Optional[Path]:
    """The checkpoint a preempted run waits to be continued from: that of the `PREEMPTED` marker in the newest
    `version_N` of `run` (the folder of a run name's versions), else None."""
    versions = versions_newest_first(run)
    if not versions or not (versions[0] / MARKER).is_file():
        return None
    ckpt = versions[0] / "checkpoints" / "last.ckpt"
    return ckpt if ckpt.is_file() else None


class Preempted(SystemExit):
    """Raised after the preemption checkpoint is written: the process exits with `PREEMPTED_EXIT`."""

    def __init__(self) -> None:
        super().__init__(PREEMPTED_EXIT)


class Preemption(Callback):
    """Turns SIGTERM, SIGUSR1 and SIGINT into a checkpoint of the current step and exit status 75 (module text)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self.saving = self.training = False
        self.trainer = None
        self._previous: dict[signal.Signals, SignalHandler] = {}

    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        """From the start of a fit (building the store, restoring a checkpoint): a signal stops at once, as there is
        nothing trained to save yet (what is being built is written atomically, and a re-run goes on with it)."""
        if stage == "fit":
            self.trainer, self.training = trainer, False
            self.take_over_signals()
            signal_point(0, trainer.global_rank)

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        """Take the signals over again (Lightning has registered its own since; its SIGTERM exits with status 0);
        from now on a signal is noted and honoured at the end of the step in progress."""
        self.training = True
        self.take_over_signals()

    def take_over_signals(self) -> None:
        """Make `note` the handler of SIGTERM, SIGUSR1 and SIGINT (remembering the handlers from before seg)."""
        if threading.current_thread() is not threading.main_thread():
            return  # (only the main thread may set handlers; a fit in a thread keeps the process's)
        previous = {sig: signal.signal(sig, self.note) for sig in SIGNALS}
        self._previous = self._previous or previous

    def note(self, signum: int, frame) -> None:
        """The signal handler: before training, stop now; during it, remember the first signal (a second Ctrl-C
        outside the save interrupts at once)."""
        if signum == signal.SIGINT and (not self.training or self.received == signal.SIGINT) and not self.saving:
            raise KeyboardInterrupt
        self.received = self.received or signum
        if not self.training:
            self.exit(self.trainer, None, "before training started: nothing trained to save")

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """At every step's end: the planned test signal (core.faults), then stop here if any rank was signalled.
        After an epoch's last batch its validation and checkpoints come first (`on_train_epoch_start` stops): a
        checkpoint of a trained-out epoch without its validation would resume into an epoch without one."""
        signal_point(trainer.global_step, trainer.global_rank)
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # (the same on every rank: no rank skips the agreement the others join)
        if self.agreed_to_stop(trainer):
            self.stop(trainer, f"{batch_idx + 1} of {trainer.num_training_batches} batches of epoch "
                               f"{trainer.current_epoch} trained")

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """A signal during the last step or validation: the finished epoch's checkpoints are written; stop here.
        (Before a fresh run's first epoch there is nothing to continue from: it stops after its first step.)"""
        if trainer.current_epoch > 0 and self.agreed_to_stop(trainer):
            self.exit(trainer, self.last_checkpoint(trainer),
                      f"at the end of epoch {trainer.current_epoch - 1}; its checkpoints are written")

    def agreed_to_stop(self, trainer) -> bool:
        """Whether any rank received a signal (every rank asks, so every rank gets the same answer)."""
        if trainer.world_size == 1:
            return self.received is not None
        return bool(trainer.strategy.reduce_boolean_decision(self.received is not None, all=False))

    def stop(self, trainer, where: str) -> None:
        """Write the checkpoint of this exact step as `last.ckpt`, requeue under SLURM, then raise `Preempted`."""
        path = self.last_checkpoint(trainer)
        self.saving = True
        try:
            trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes (atomically: AtomicCheckpointIO)
        finally:
            self.saving = False
        self.exit(trainer, path, f"after step {trainer.global_step} ({where}); checkpoint written")

    def exit(self, trainer, path: Optional[Path], what: str) -> None:
        """Say what happened and how to continue (rank 0), mark the run as waiting to be continued from `path`,
        requeue a SLURM job on SIGUSR1; then raise `Preempted`."""
        name = signal.Signals(self.received).name if self.received else "a signal on another rank"
        again = f"seg fit --ckpt_path {path}" if path else "the same command"
        line = f"seg: preempted by {name} {what}{f': {path}' if path else ''}. Continue with: {again} " \
               f"(exit status {PREEMPTED_EXIT})"
        if trainer.is_global_zero:
            if path is not None:
                write_text_atomically(path.parent.parent / MARKER, f"{path}\n{name}\n")
            log.info(line)
            if self.received == signal.SIGUSR1 and os.environ.get("SLURM_JOB_ID"):
                log.info(requeue_slurm_job(os.environ["SLURM_JOB_ID"]))
        raise Preempted()

    @override
    def on_fit_end(self, trainer, pl_module) -> None:
        """The run ended normally: it waits for nothing any more (a re-run of its command starts a new run)."""
        if trainer.is_global_zero:
            (self.last_checkpoint(trainer).parent.parent / MARKER).unlink(missing_ok=True)

    @staticmethod
    def last_checkpoint(trainer) -> Path:
        """The run's `checkpoints/last.ckpt` (ModelCheckpoint's folder)."""
        callback = trainer.checkpoint_callback
        folder = Path(callback.dirpath) if callback is not None and callback.dirpath else (
            Path(trainer.log_dir or ".") / "checkpoints")
        return folder / "last.ckpt"

    @override
    def teardown(self, trainer, pl_module, stage: str) -> None:
        """Give the signals back to whoever handled them before."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    @override
    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """The same when the fit ends by an exception (`Preempted` included: Lightning skips `teardown` then)."""
        self.teardown(trainer, pl_module, "fit")


def requeue_slurm_job(job_id: str) -> str:
    """`scontrol requeue JOB` (the requeued job runs the same command, which continues this run); what happened."""
    job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}" \
        if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID") else job_id
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return f"seg: SLURM job {job} not requeued: scontrol is not on PATH (resubmit the same command to continue)"
    except subprocess.TimeoutExpired:
        return f"seg: SLURM job {job} not requeued: scontrol requeue did not answer within 60 s"
    if result.returncode != 0:
        return f"seg: SLURM job {job} not requeued: scontrol requeue said {result.stderr.strip() or result.returncode}"
    return f"seg: SLURM job {job} requeued; it continues this run when it starts again"
