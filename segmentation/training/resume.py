"""What a resume checks and reports (the stored config is put first on the command line by `app.argv`).

`seg fit --ckpt_path X`:

1. resolves `last` or a run directory to the newest checkpoint that loads
   (`resolve_checkpoint`), refusing a corrupt file by name;
2. refuses a model that cannot take the checkpoint's weights (`incompatibilities`);
3. continues in the same run directory and prints one paragraph saying what was
   restored and what changed (`ResumeSummary`).

The schedule's own resume rules live in `schedules.restore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.errors import SegError
from ..core.internals import epochs_completed_in_checkpoint
from ..core.log import log
from ..core.storage import write_text_atomically
from ..schedules.schedulers import resume_note
from .checkpointing import (
    load_checkpoint,
    newest_good_checkpoint,
    remove_stale_temporaries,
    versions_newest_first,
)
from .config_diff import comparable, config_differences
from .records import record_of, refuse_unusable, stored_config

BRANCH_RECORD = "BRANCHED_FROM"  # in a branch's run directory: the checkpoint it continued from
# Hyper-parameters that decide the shapes of the weights (or what the outputs mean).
MODEL_IDENTITY = ("architecture", "in_channels", "out_channels", "multilabel", "class_names", "network_kwargs")


def resolve_checkpoint(value: str, run_root: Optional[Path]) -> Optional[Path]:
    """The checkpoint file meant by `--ckpt_path VALUE`.

    A file is checked to load (SegError naming it if not). A run directory (or
    its `checkpoints/`) gives its newest good checkpoint. `last` gives the newest
    good checkpoint of the newest version under `run_root` that has one, or None.
    """
    if value == "last":
        if run_root is None:
            return None
        for version in versions_newest_first(run_root):
            found = newest_good_checkpoint(version / "checkpoints")
            if found:
                return found
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        found = newest_good_checkpoint(folder)
        if found is None:
            raise SegError(f"no loadable checkpoint in {folder} (--ckpt_path)")
        return found
    if path.exists() and not path.is_file():  # a device (a link to /dev/zero would be read forever), a pipe
        raise SegError(f"checkpoint {value} is not a regular file (--ckpt_path): give a .ckpt file or a run directory")
    refuse_unusable(path, load_checkpoint(path))  # (load: a SegError naming a missing or corrupt file)
    return path


def incompatibilities(saved: dict, current: dict, keys: tuple[str, ...] = MODEL_IDENTITY) -> list[str]:
    """The model settings (`keys`) in which a checkpoint's hyper-parameters and the configured model differ."""
    return [
        f"{key}: checkpoint {saved.get(key)!r}, configured {current.get(key)!r}"
        for key in keys
        if comparable(saved.get(key)) != comparable(current.get(key))
    ]


def refuse_incompatible(ckpt: Path, saved: dict, current: dict, keys: tuple[str, ...] = MODEL_IDENTITY) -> None:
    """SegError naming `ckpt` and each difference when the configured model cannot take its weights."""
    different = incompatibilities(saved, current, keys)
    if different:
        raise SegError(f"checkpoint {ckpt} does not fit the configured model: " + "; ".join(different))


def refuse_weights_that_do_not_fit(ckpt: Path, checkpoint: dict, model: Any) -> None:
    """SegError naming `ckpt` when its model identity (`MODEL_IDENTITY`) or its weights (names, shapes) differ from
    the configured model's: caught before Lightning's restore would fail halfway with a traceback."""
    refuse_incompatible(ckpt, checkpoint.get("hyper_parameters", {}), dict(model.hparams))
    saved, wanted = checkpoint.get("state_dict", {}), model.state_dict()
    different = [f"{key} missing" for key in wanted if key not in saved]
    different += [f"{key} unknown to this model" for key in saved if key not in wanted]
    different += [f"{key}: checkpoint {list(saved[key].shape)}, model {list(wanted[key].shape)}" for key in wanted
                  if key in saved and tuple(saved[key].shape) != tuple(wanted[key].shape)]
    if different:
        raise SegError(f"checkpoint {ckpt} does not fit the configured model ({len(different)} weight(s) differ: "
                       f"{'; '.join(different[:3])}): give a checkpoint of this model")


def prepare_fit_resume(
    value: Optional[str], run: Path, model_hparams: dict, config_yaml: str, max_epochs: Optional[int] = None
) -> tuple[Optional[Path], Optional[ResumeSummary]]:
    """For `seg fit --ckpt_path VALUE`: the checked checkpoint file and the summary callback.

    (None, None) when there is nothing to resume: no `--ckpt_path`, or `last`
    with no checkpoint of `run` yet (said on the console; a new run starts).
    """
    if not value:
        return None, None
    ckpt = resolve_checkpoint(str(value), run_root=run)
    if ckpt is None:
        log.info(f"--ckpt_path last: no checkpoint of {run} yet; starting a new run")
        return None, None
    remove_stale_temporaries(ckpt.parent)  # what a killed writer left behind
    checkpoint = load_checkpoint(ckpt)
    refuse_incompatible(ckpt, checkpoint.get("hyper_parameters", {}), model_hparams)
    trained = int(checkpoint.get("epoch", -1)) + 1
    if max_epochs is not None and 0 <= max_epochs < trained:
        raise SegError(
            f"--trainer.max_epochs {max_epochs}: checkpoint {ckpt} has trained {trained} epochs already; give "
            f"at least {trained} (more to continue training); nothing was changed"
        )
    stored = stored_config(checkpoint)
    differences = config_differences(stored, config_yaml) if stored else []
    return ckpt, ResumeSummary(ckpt, checkpoint, differences, newer_checkpoint_than(ckpt, checkpoint))


def newer_checkpoint_than(ckpt: Path, checkpoint: dict) -> Optional[Path]:
    """The run's newest good checkpoint if it has trained more epochs than `ckpt` (a resume there would
    overwrite it: seg branches into a new version directory instead), else None."""
    newest = newest_good_checkpoint(ckpt.parent)
    if newest is None or int(load_checkpoint(newest).get("epoch", -1)) <= int(checkpoint.get("epoch", -1)):
        return None
    return newest


def run_directory_of(ckpt: Path) -> Optional[Path]:
    """`<root>/<name>/version_N` of a checkpoint in its run's `checkpoints/` folder, else None."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def stopped_inside_epoch(checkpoint: dict) -> Optional[int]:
    """How many batches of its last epoch a checkpoint written inside that epoch (a preemption) had trained, or None
    for a checkpoint written at an epoch's end."""
    epoch = int(checkpoint.get("epoch", 0))
    completed = epochs_completed_in_checkpoint(checkpoint)
    if completed is None or completed > epoch:
        return None
    positions = [value["position"] for value in checkpoint.values() if isinstance(value, dict) and "position" in value]
    return int(positions[0].get("batches", 0)) if positions else 0


class ResumeSummary(Callback):
    """Prints one paragraph when a resumed fit starts: checkpoint, epoch, restored, changed."""

    def __init__(self, ckpt_path: Path, checkpoint: dict, differences: list[str], newer: Optional[Path] = None):
        self.ckpt_path = ckpt_path
        self.newer = newer  # set: this resume branches into a new version directory
        self.epoch = int(checkpoint.get("epoch", -1))
        self.saved_max_epochs = record_of(checkpoint).get("max_epochs")
        self.saved_world_size = record_of(checkpoint).get("world_size")
        self.inside = stopped_inside_epoch(checkpoint)  # batches of the unfinished epoch trained, or None
        self.validation_pending = bool(record_of(checkpoint).get("validation_pending"))  # stopped while validating
        self.differences = differences
        self.text = ""

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        """Compose and print the paragraph (schedules have been restored by now)."""
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        notes = [resume_note(c.scheduler) for c in trainer.lr_scheduler_configs]
        changed = [note for note in notes if note and "restored as saved" not in note]
        if self.saved_max_epochs not in (None, trainer.max_epochs):
            changed.insert(0, f"max_epochs {self.saved_max_epochs} -> {trainer.max_epochs}")
        if self.saved_world_size not in (None, trainer.world_size):
            changed.append(f"world size {self.saved_world_size} -> {trainer.world_size} (each epoch's order is dealt "
                           f"out by rank: the run continues, but exactly as uninterrupted only on "
                           f"{self.saved_world_size} processes)")
        changed += [f"config {d}" for d in self.differences if not d.startswith("trainer.max_epochs")]
        restored = "weights, optimizer state (moments), loop counters, data split"
        restored += ", the sampler's place inside the epoch" if self.inside is not None else ""
        restored += "".join(f", {note}" for note in notes if "restored as saved" in note)
        where = (f"epoch {self.epoch} trained, its validation cut short; validating it again, then continuing at "
                 f"epoch {self.epoch + 1}" if self.validation_pending else
                 f"inside epoch {self.epoch} after {self.inside} of its batches; continuing with the next batch"
                 if self.inside is not None else
                 f"epoch {self.epoch} done; continuing at epoch {trainer.current_epoch}")
        self.text = (
            f"Resuming from {self.ckpt_path} ({where} "
            f"of {trainer.max_epochs}, lr {trainer.optimizers[0].param_groups[0]['lr']:.4g}) into {log_dir}. "
            f"Restored: {restored}. Changed: {'; '.join(changed) if changed else 'nothing'}."
        )
        if self.newer is not None:
            self.text += (f" Branched: the run has a newer checkpoint ({self.newer}), which a resume into its "
                          "directory would overwrite; this continues in a new version, "
                          "nothing of the old one changes.")
        if trainer.is_global_zero:
            log.info(self.text)
            if self.newer is not None and log_dir:
                write_text_atomically(Path(log_dir) / BRANCH_RECORD, f"{self.ckpt_path}\n")
