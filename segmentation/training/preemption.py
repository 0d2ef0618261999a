"""Preemption: SIGTERM (cloud, Kubernetes, Colab), SIGUSR1 (SLURM's `--signal`) and SIGINT (Ctrl-C) end a fit cleanly.

The signal is noted; the step in progress finishes; at that step's end all ranks agree to stop (one
all-reduce per step, so a signal that reached one rank stops them all at the same step); the exact position
(weights, optimizer, schedule, loop counters, the data sampler's place inside the epoch) is written atomically
as the run's `last.ckpt`; one line says so; the process exits with `PREEMPTED_EXIT` (75, EX_TEMPFAIL: "try
again"), never 0. The run directory gets a `PREEMPTED` marker: the same `seg fit` command run again (a
requeued SLURM job, a re-submitted cloud job) continues that run from that checkpoint, as `--ckpt_path` would;
the marker goes when the run ends normally. Under SLURM, SIGUSR1 also requeues the job (`scontrol requeue`,
rank 0).

A signal during an epoch's validation (or in its last step) stops before the next validation batch: the checkpoint
is that of the trained epoch as it was before its validation (kept in memory when the epoch's last step ended,
written only then), and the continued run validates that epoch again, whole, so that its results stay exact.

A further signal while a stop is under way (from the first signal until the process has ended) stops at once:
one line says so, no checkpoint of that moment is written (the checkpoint being written is abandoned; every
checkpoint is written atomically, so the run's last whole one stays), the exit status is 75 all the same, and the
same command continues from the run's last whole checkpoint. In the `seg` process itself (`exit_now`), one after
the stop's line exits the process at once.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional, Union

import torch
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.constants import CHECKPOINT_RECORD_KEY, PREEMPTED_EXIT
from ..core.faults import signal_point
from ..core.internals import checkpoint_in_memory, with_validation_pending
from ..core.log import log
from ..core.storage import write_text_atomically
from .checkpoint_writer import settle_checkpoints
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
    """Raised when a fit stops for a signal (its checkpoint written, or nothing to save): exit `PREEMPTED_EXIT`."""

    def __init__(self) -> None:
        super().__init__(PREEMPTED_EXIT)


class StoppedAtOnce(Preempted):
    """Raised by a further signal while a stop is under way: the same exit status, without a checkpoint of that
    moment."""


class Preemption(Callback):
    """Turns SIGTERM, SIGUSR1 and SIGINT into a checkpoint of the current step and exit status 75 (module text).

    Args:
        exit_now: ends this process at once with the status given (the `seg` process's own `os._exit`); a signal
            after the stop's line calls it. None (a fit inside a longer-lived process): such a signal is ignored,
            the fit is already on its way out with status 75.
    """

    def __init__(self, exit_now: Optional[Callable[[int], None]] = None) -> None:
        self.received: Optional[int] = None
        self.training = self.ending = False  # ending: `Preempted` is raised, the stop's line said
        self.trainer = None
        self.exit_now, self.pid = exit_now, os.getpid()
        self.before_validation: Optional[dict] = None  # the checkpoint of the trained epoch, while it validates
        self.shared_batches = self.validation_batches = 0  # those every rank has: where the ranks may agree to stop
        self.validated = 0  # validation batches of this fit (fault points `val<n>`)
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
        """The signal handler: before training, stop now; during it, remember the first signal; a further signal
        stops at once."""
        if os.getpid() != self.pid:
            return  # a forked loader worker: the fit's own process decides
        if self.received is not None or self.ending:
            self.stop_at_once(signum)
            return
        self.received = signum
        if not self.training:
            self.exit(self.trainer, None, "before training started: nothing trained to save")

    def stop_at_once(self, signum: int) -> None:
        """A further signal while stopping: say so, keep the run's last whole checkpoint as the one to continue
        from, raise `StoppedAtOnce`; after the stop's line, end the process (`exit_now`)."""
        name = signal.Signals(signum).name
        if self.ending:  # the status is decided and said; the process is on its way out
            if self.exit_now is not None:
                log.info(f"seg: {name} again: exiting at once (exit status {PREEMPTED_EXIT})")
                self.exit_now(PREEMPTED_EXIT)
            return
        self.ending = True
        trainer = self.trainer
        callback = trainer.checkpoint_callback if trainer is not None else None  # (not `log_dir`: a collective)
        kept = Path(callback.dirpath) / "last.ckpt" if callback is not None and callback.dirpath else None
        kept = kept if kept is not None and kept.is_file() else None
        if trainer is not None and trainer.is_global_zero:
            if kept is not None:
                write_text_atomically(kept.parent.parent / MARKER, f"{kept}\n{name}\n")
            log.info(f"seg: {name} while stopping: stopped at once, without a checkpoint of this moment; "
                     + (f"the same command continues from the run's last whole checkpoint {kept}" if kept else
                        "the run has no checkpoint of its own yet: the same command begins it again")
                     + f" (exit status {PREEMPTED_EXIT})")
        raise StoppedAtOnce()

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """At every step's end: the planned test signal (core.faults), then stop here if any rank was signalled.
        After an epoch's last batch its validation comes first: the checkpoint of this moment is kept in memory
        (its tensors are the live ones, unchanged while the epoch validates) for a stop during that validation."""
        signal_point(trainer.global_step, trainer.global_rank)
        if batch_idx + 1 >= trainer.num_training_batches:
            self.before_validation = with_validation_pending(checkpoint_in_memory(trainer))
            self.before_validation.setdefault(CHECKPOINT_RECORD_KEY, {})["validation_pending"] = True
            return  # (the same on every rank: no rank skips the agreement the others join)
        if self.agreed_to_stop(trainer):
            self.stop(trainer, f"{batch_idx + 1} of {trainer.num_training_batches} batches of epoch "
                               f"{trainer.current_epoch} trained")

    @override
    def on_validation_start(self, trainer, pl_module) -> None:
        """Before a fit's validation: how many of its batches every rank has (each rank validates its own cases)."""
        counts = [n for n in trainer.num_val_batches if not math.isinf(n)] if self.before_validation else []
        self.validation_batches = batches = int(counts[0]) if counts else 0
        if trainer.world_size > 1:  # (every rank asks, so every rank gets the same answer)
            batches = int(trainer.strategy.reduce(torch.tensor(batches, device=trainer.strategy.root_device),
                                                  reduce_op="min"))
        self.shared_batches = batches

    @override
    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        """Before each validation batch of a fit that every rank has: stop here if any rank was signalled."""
        if self.before_validation is not None and dataloader_idx == 0 and batch_idx < self.shared_batches \
                and self.agreed_to_stop(trainer):
            self.stop_validation(trainer, batch_idx)

    @override
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """The planned test signal after the fit's n-th validation batch (core.faults' `val<n>`)."""
        if self.training and not trainer.sanity_checking:
            self.validated += 1
            signal_point(f"val{self.validated}", trainer.global_rank)

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """The epoch is validated (or has no validation): forget the checkpoint kept for its validation."""
        self.before_validation = None

    @override
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """A signal after the last validation batch: the finished epoch's checkpoints are written; stop here.
        (Before a fresh run's first epoch there is nothing to continue from: it stops after its first step.)"""
        if trainer.current_epoch > 0 and self.agreed_to_stop(trainer):
            self.finish(trainer, self.last_checkpoint(trainer),
                        f"at the end of epoch {trainer.current_epoch - 1}; its checkpoints are written")

    def agreed_to_stop(self, trainer) -> bool:
        """Whether any rank received a signal (every rank asks, so every rank gets the same answer)."""
        if trainer.world_size == 1:
            return self.received is not None
        return bool(trainer.strategy.reduce_boolean_decision(self.received is not None, all=False))

    def stop(self, trainer, where: str) -> None:
        """Write the checkpoint of this exact step as `last.ckpt`, requeue under SLURM, then raise `Preempted`."""
        path = self.last_checkpoint(trainer)
        signal_point("stopping", trainer.global_rank)
        trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes (atomically: AtomicCheckpointIO)
        self.finish(trainer, path, f"after step {trainer.global_step} ({where}); checkpoint written")

    def stop_validation(self, trainer, batch_idx: int) -> None:
        """Write the checkpoint kept before this validation as `last.ckpt`, then raise `Preempted`."""
        path, checkpoint = self.last_checkpoint(trainer), self.before_validation
        assert checkpoint is not None
        signal_point("stopping", trainer.global_rank)
        trainer.strategy.save_checkpoint(checkpoint, path)  # rank 0 writes (atomically: AtomicCheckpointIO)
        trainer.strategy.barrier("seg.preemption")
        self.before_validation = None
        self.finish(trainer, path, f"during the validation of epoch {trainer.current_epoch} ({batch_idx} of "
                                   f"{self.validation_batches} batches validated); checkpoint of the epoch as trained, "
                                   f"before its validation, written (continued, the run validates it again)")

    def finish(self, trainer, path: Optional[Path], what: str) -> None:
        """Flush and close the loggers (what they hold is written before anything can end the process), then
        `exit`."""
        for logger in trainer.loggers:
            logger.finalize("failed")  # (as Lightning does on an interruption; again then, harmlessly)
        self.exit(trainer, path, what)

    def exit(self, trainer, path: Optional[Path], what: str) -> None:
        """Say what happened and how to continue (rank 0), mark the run as waiting to be continued from `path`,
        requeue a SLURM job on SIGUSR1; then raise `Preempted`."""
        name = signal.Signals(self.received).name if self.received else "a signal on another rank"
        again = f"seg fit --ckpt_path {path}" if path else "the same command"
        line = f"seg: preempted by {name} {what}{f': {path}' if path else ''}. Continue with: {again} " \
               f"(exit status {PREEMPTED_EXIT})"
        self.ending = True
        settle_checkpoints(trainer)  # the stop's checkpoint (and the epoch's before it) on disk before anything says so
        if trainer.is_global_zero:
            if path is not None:
                write_text_atomically(path.parent.parent / MARKER, f"{path}\n{name}\n")
            log.info(line)
            if self.received == signal.SIGUSR1 and os.environ.get("SLURM_JOB_ID"):
                log.info(requeue_slurm_job(os.environ["SLURM_JOB_ID"]))
        signal_point("exiting", trainer.global_rank)
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
        """Give the signals back to whoever handled them before; not while this process ends with a stop's status
        (`exit_now`): until it has ended, a further signal ends it at once."""
        if self.ending and self.exit_now is not None:
            return
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
