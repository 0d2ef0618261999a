"""What a resume restores, re-bases and reports.

Every checkpoint carries, under the key `seg`, the composed config of its run
and the run directory (`RunRecord`). `seg fit --ckpt_path X` then:

1. puts that stored config first on the command line (`with_stored_config`),
   so a checkpoint alone restores the model, data and trainer settings, while a
   `--config` or `--section.key` given by the user still wins;
2. resolves `last` or a run directory to the newest checkpoint that loads
   (`resolve_checkpoint`), refusing a corrupt file by name;
3. refuses a model that cannot take the checkpoint's weights (`incompatibilities`);
4. continues in the same run directory and prints one paragraph saying what was
   restored and what changed (`ResumeSummary`).

The schedule's own resume rules live in `schedules.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from lightning.pytorch.callbacks import Callback

from . import schedules
from .checkpointing import load_checkpoint, newest_good_checkpoint, remove_stale_temporaries
from .errors import SegError

SEG_KEY = "seg"
RESUMABLE = ("fit", "validate", "test", "predict")
# Hyper-parameters that decide the shapes of the weights (or what the outputs mean).
MODEL_IDENTITY = ("architecture", "in_channels", "out_channels", "multilabel", "class_names", "network_kwargs")


class RunRecord(Callback):
    """Stores in every checkpoint the run's composed config (YAML) and its run directory."""

    def __init__(self, config_yaml: str):
        self.config_yaml = config_yaml

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        """Add the `seg` entry to the checkpoint being written."""
        checkpoint[SEG_KEY] = {"config": self.config_yaml, "log_dir": trainer.log_dir, "max_epochs": trainer.max_epochs}


def ckpt_argument(argv: list[str]) -> tuple[Optional[int], Optional[str]]:
    """Position and value of `--ckpt_path` in `argv` (either `--ckpt_path X` or `--ckpt_path=X`)."""
    for index, arg in enumerate(argv):
        if arg == "--ckpt_path" and index + 1 < len(argv):
            return index, argv[index + 1]
        if arg.startswith("--ckpt_path="):
            return index, arg.split("=", 1)[1]
    return None, None


def with_stored_config(argv: list[str]) -> list[str]:
    """`argv` with the checkpoint's stored config inserted right after the subcommand.

    Only when `--ckpt_path` names a file or a run directory (not `last`, which
    needs the run's config to find the run). Later `--config` files and
    arguments override the stored values, as LightningCLI composes left to right.
    """
    if not argv or argv[0] not in RESUMABLE:
        return argv
    _, value = ckpt_argument(argv)
    if value is None or value == "last":
        return argv
    path = resolve_checkpoint(value, run_root=None)
    stored = (load_checkpoint(path).get(SEG_KEY) or {}).get("config") if path else None
    if not stored:
        return argv
    return [argv[0], "--config", stored, *argv[1:]]


def resolve_checkpoint(value: str, run_root: Optional[Path]) -> Optional[Path]:
    """The checkpoint file meant by `--ckpt_path VALUE`.

    A file is checked to load (SegError naming it if not). A run directory (or
    its `checkpoints/`) gives its newest good checkpoint. `last` gives the newest
    good checkpoint of the newest version under `run_root` that has one, or None.
    """
    if value == "last":
        if run_root is None:
            return None
        versions = sorted(run_root.glob("version_*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for version in versions:
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
    load_checkpoint(path)  # raises a SegError naming the file when it is missing or corrupt
    return path


def incompatibilities(saved: dict, current: dict, keys: tuple[str, ...] = MODEL_IDENTITY) -> list[str]:
    """The model settings (`keys`) in which a checkpoint's hyper-parameters and the configured model differ."""
    return [
        f"{key}: checkpoint {saved.get(key)!r}, configured {current.get(key)!r}"
        for key in keys
        if _plain(saved.get(key)) != _plain(current.get(key))
    ]


def refuse_incompatible(ckpt: Path, saved: dict, current: dict, keys: tuple[str, ...] = MODEL_IDENTITY) -> None:
    """SegError naming `ckpt` and each difference when the configured model cannot take its weights."""
    different = incompatibilities(saved, current, keys)
    if different:
        raise SegError(f"checkpoint {ckpt} does not fit the configured model: " + "; ".join(different))


def prepare_fit_resume(
    value: Optional[str], run: Path, model_hparams: dict, config_yaml: str
) -> tuple[Optional[Path], Optional["ResumeSummary"]]:
    """For `seg fit --ckpt_path VALUE`: the checked checkpoint file and the summary callback.

    (None, None) when there is nothing to resume: no `--ckpt_path`, or `last`
    with no checkpoint of `run` yet (said on the console; a new run starts).
    """
    if not value:
        return None, None
    ckpt = resolve_checkpoint(str(value), run_root=run)
    if ckpt is None:
        print(f"--ckpt_path last: no checkpoint of {run} yet; starting a new run", flush=True)
        return None, None
    remove_stale_temporaries(ckpt.parent)  # what a killed writer left behind
    checkpoint = load_checkpoint(ckpt)
    refuse_incompatible(ckpt, checkpoint.get("hyper_parameters", {}), model_hparams)
    stored = (checkpoint.get(SEG_KEY) or {}).get("config", "")
    differences = config_differences(stored, config_yaml) if stored else []
    return ckpt, ResumeSummary(ckpt, checkpoint, differences)


def run_directory_of(ckpt: Path) -> Optional[Path]:
    """`<root>/<name>/version_N` of a checkpoint in its run's `checkpoints/` folder, else None."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def config_differences(stored_yaml: str, effective_yaml: str) -> list[str]:
    """`key: old -> new` for each setting the resumed run changed (the checkpoint path itself excluded)."""
    old, new = _flatten(yaml.safe_load(stored_yaml) or {}), _flatten(yaml.safe_load(effective_yaml) or {})
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key != "ckpt_path" and _plain(old.get(key)) != _plain(new.get(key))
    ]


class ResumeSummary(Callback):
    """Prints one paragraph when a resumed fit starts: checkpoint, epoch, restored, changed."""

    def __init__(self, ckpt_path: Path, checkpoint: dict, differences: list[str]):
        self.ckpt_path = ckpt_path
        self.epoch = int(checkpoint.get("epoch", -1))
        self.saved_max_epochs = (checkpoint.get(SEG_KEY) or {}).get("max_epochs")
        self.differences = differences
        self.text = ""

    def on_train_start(self, trainer, pl_module) -> None:
        """Compose and print the paragraph (schedules have been restored by now)."""
        notes = [schedules.resume_note(c.scheduler) for c in trainer.lr_scheduler_configs]
        changed = [note for note in notes if note and "restored as saved" not in note]
        if self.saved_max_epochs not in (None, trainer.max_epochs):
            changed.insert(0, f"max_epochs {self.saved_max_epochs} -> {trainer.max_epochs}")
        changed += [f"config {d}" for d in self.differences if not d.startswith("trainer.max_epochs")]
        restored = "weights, optimizer state (moments), loop counters, data split"
        restored += "".join(f", {note}" for note in notes if "restored as saved" in note)
        self.text = (
            f"Resuming from {self.ckpt_path} (epoch {self.epoch} done; continuing at epoch {trainer.current_epoch} "
            f"of {trainer.max_epochs}, lr {trainer.optimizers[0].param_groups[0]['lr']:.4g}) into {trainer.log_dir}. "
            f"Restored: {restored}. Changed: {'; '.join(changed) if changed else 'nothing'}."
        )
        if trainer.is_global_zero:
            print(self.text, flush=True)
