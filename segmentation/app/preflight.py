"""The up-front refusals of `seg fit|validate|test|predict`: options no run can use, data that would fail,
folders that cannot be written. Each raises a SegError before anything is built, trained or written."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import torch

from ..core.constants import CACHE_FOLDER_NAME
from ..core.errors import SegError
from ..core.storage import writable_problem
from ..data.base import VolumeDataModule
from ..data.split import refuse_an_empty_split
from ..schedules.plans import HORIZON_SCHEDULES


def refuse_validation_inside_epochs(trainer_config) -> None:
    """SegError for `--trainer.val_check_interval` other than once per epoch.

    The plateau schedule, `best.ckpt` and early stopping step once per validation and count
    epochs; several validations per epoch would step them several times per epoch.
    """
    interval = trainer_config.get("val_check_interval")
    if interval is not None and float(interval) != 1.0:
        raise SegError(
            f"--trainer.val_check_interval {interval}: seg validates once per epoch (the plateau schedule, "
            f"best.ckpt and early stopping step once per validation). Leave it unset; to validate less often "
            f"use --trainer.check_val_every_n_epoch N"
        )


def refuse_impossible_options(config) -> None:
    """SegError naming an option whose value no run can use (before anything is built or written)."""
    lr = (config.get("model") or {}).get("lr")
    if lr is not None and not (math.isfinite(lr) and lr >= 0):
        raise SegError(f"--model.lr {lr}: the learning rate must be a finite number, 0 or more (e.g. 1e-3)")
    data = (config.get("data") or {}).get("init_args") or {}
    for key in ("batch_size", "samples_per_volume", "num_folds"):
        value = data.get(key)
        if value is not None and value < 1:
            raise SegError(f"--data.{key} {value}: must be 1 or more")
    refuse_impossible_data_options(data)
    refuse_an_unwritable_cache(data)
    trainer = config.get("trainer") or {}
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
        raise SegError(f"--trainer.max_epochs {max_epochs}: give the number of epochs to train (or -1 for no limit)")
    refuse_unusable_devices(trainer)
    every = trainer.get("check_val_every_n_epoch")
    if every is not None and every < 1:
        raise SegError(f"--trainer.check_val_every_n_epoch {every}: must be 1 or more (validate every N epochs)")
    refuse_a_warm_up_as_long_as_the_run(config.get("model") or {}, max_epochs)
    keep = config.get("keep_last_epochs")
    if keep is not None and keep < 1:
        raise SegError(f"--keep_last_epochs {keep}: keep 1 or more epoch files (leave it unset to keep all)")


def refuse_a_warm_up_as_long_as_the_run(model, max_epochs) -> None:
    """SegError for a horizon schedule whose warm-up (in epochs) leaves none of the run's epochs (a warm-up in steps
    is checked once the steps per epoch are known, by `schedules.schedulers.build_schedule`)."""
    schedule = model.get("schedule") or {}
    warmup = schedule.get("warmup_epochs") if hasattr(schedule, "get") else getattr(schedule, "warmup_epochs", 0)
    if model.get("scheduler") in HORIZON_SCHEDULES and warmup and max_epochs and 0 < max_epochs <= warmup:
        raise SegError(f"--model.schedule.warmup_epochs {warmup} leaves nothing of the {max_epochs}-epoch run for the "
                       f"{model.get('scheduler')} schedule; shorten it or raise --trainer.max_epochs")


def refuse_unusable_devices(trainer: dict) -> None:
    """SegError for `--trainer.devices` 0 and for a GPU accelerator on a machine where torch sees no CUDA GPU."""
    devices = trainer.get("devices")
    if str(devices).strip() in ("0", "[]") or (isinstance(devices, int) and devices < -1):
        raise SegError(f"--trainer.devices {devices}: give 1 or more devices (or auto for all of this machine's)")
    accelerator = str(trainer.get("accelerator") or "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "for CPU only"
        raise SegError(f"--trainer.accelerator {accelerator}: torch sees no CUDA GPU on this machine (torch "
                       f"{torch.__version__}, built {build}); use --trainer.accelerator cpu, or auto")


FRACTIONS = (  # option, lowest, highest, in words
    ("pos_fraction", 0.0, 1.0, "from 0 to 1"),
    ("val_fraction", 1e-9, 0.99, "above 0 and below 1 (seg validates every epoch; the rest trains)"),
    ("test_fraction", 0.0, 0.99, "from 0 to below 1 (the rest trains and validates)"),
)


def refuse_impossible_fold(fold, folds) -> None:
    """SegError for a cross-validation fold that does not exist, or fewer than two folds."""
    if fold is None:
        return
    if folds is not None and folds < 2:
        raise SegError(f"--data.num_folds {folds}: cross-validation needs 2 or more folds")
    if fold < 0 or (folds is not None and fold >= folds):
        raise SegError(f"--data.fold {fold}: folds are numbered 0 to {(folds or 5) - 1} (--data.num_folds {folds})")


def refuse_impossible_data_options(data: dict) -> None:
    """SegError naming a `--data.*` value no run can use (numbers out of range, a batch that would shrink)."""
    batch, per_volume = data.get("batch_size"), data.get("samples_per_volume")
    if batch is not None and per_volume is not None and batch % per_volume:
        raise SegError(f"--data.batch_size {batch} is not a multiple of --data.samples_per_volume {per_volume}: a "
                       f"batch takes samples_per_volume patches from each of its volumes; use "
                       f"{max(per_volume, batch - batch % per_volume)} or {batch - batch % per_volume + per_volume}")
    if (steps := data.get("steps_per_epoch")) is not None and steps < 1:
        raise SegError(f"--data.steps_per_epoch {steps}: must be 1 or more (or null: one pass over the volumes)")
    if (workers := data.get("num_workers")) is not None and workers < 0:
        raise SegError(f"--data.num_workers {workers}: must be 0 (load in the training process) or more")
    for key, low, high, words in FRACTIONS:
        value = data.get(key)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise SegError(f"--data.{key} {value}: must be a fraction {words}")
    refuse_impossible_fold(data.get("fold"), data.get("num_folds"))
    patch = data.get("patch_size")
    if patch is not None and (len(patch) != 3 or min(patch) < 1):
        raise SegError(f"--data.patch_size {list(patch)}: give three sizes in voxels, one per axis (e.g. [96, 96, 96])")
    name = data.get("name")
    if name is not None and (Path(str(name)).name != name or name in ("", ".", "..")):
        raise SegError(f"--data.name {name!r}: a dataset name is one folder name under lightning_logs/ (no '/' or "
                       f"'..')")
    spacing = data.get("spacing")
    if spacing is not None and not all(math.isfinite(v) and v > 0 for v in spacing):
        raise SegError(f"--data.spacing {list(spacing)}: each voxel size must be a positive number of mm "
                       f"(e.g. [1.5, 1.5, 2.0]), or leave it unset to keep each image's own")


def refuse_an_unwritable_cache(data: dict) -> None:
    """SegError when the cache folder (`--data.cache_dir`, default `<root>/.seg_cache`) is a file, or cannot be
    written while the cache mode writes there (the store; TotalSegmentator's merged labels always)."""
    root = data.get("root")
    if root is None:
        return
    folder = Path(data.get("cache_dir") or Path(root) / CACHE_FOLDER_NAME)
    writes = data.get("cache") in ("store", "gpu") or "classes" in data
    problem = writable_problem(folder) if writes or folder.is_file() else ""
    if problem:
        raise SegError(f"cannot write the cache folder {folder}: {problem}; give a writable folder with "
                       f"--data.cache_dir (or --data.cache memory, which writes nothing)")


def check_data_before_any_run_directory(datamodule: VolumeDataModule) -> None:
    """The up-front dataset check, before the logger makes a run directory (a broken dataset leaves none).

    Lightning would run it in `setup` only after creating the logger's `version_N`; `setup` then finds these
    cases checked already.
    """
    cases = datamodule.list_cases()
    if not cases:
        raise SegError(f"no labelled cases found in {datamodule.root}; check --data.root")
    twice = [case for case, count in Counter(case["case"] for case in cases).items() if count > 1]
    if twice:
        raise SegError(f"case {twice[0]} is listed twice in {datamodule.root} ({len(twice)} case(s) listed more than "
                       f"once): each case must appear once, or it would be trained on twice as often")
    refuse_an_empty_split(datamodule.split([case["case"] for case in cases]), datamodule.root)
    datamodule.prepare_data()  # TotalSegmentator merges its masks here (the check reads them); the store is built
    datamodule.check(cases)


def refuse_unwritable(folder: Path | str, option: str) -> None:
    """SegError when seg cannot write in `folder` (read-only mount, a file in the way, no permission)."""
    problem = writable_problem(folder)
    if problem:
        raise SegError(f"cannot write {folder}: {problem}; choose a writable folder with {option}")


def refuse_unwritable_results(folder: Path) -> None:
    """SegError when `seg test|validate` could not write its results into the run's `folder` (checked before any
    case is scored)."""
    problem = writable_problem(folder)
    if problem:
        raise SegError(f"cannot write the results to {folder}: {problem}; copy the run directory to a writable "
                       f"folder and give the checkpoint there with --ckpt_path")
