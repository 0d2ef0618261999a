"""The datasets of each cache mode: none and memory (MONAI pipelines; memory: MONAI CacheDataset), store (the
crop-first preprocessed store, memory-mapped) and gpu (the store's training volumes held as tensors on the
accelerator, or in RAM on a CPU-only machine).

Validation items carry `index`, their position in the validation split, so that validation counts each case
once on any number of devices. Before a memory cache fills, one case is preprocessed to announce the size and
time it will take. The former `disk` mode (MONAI PersistentDataset) is refused with a pointer to `store`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import torch
from monai import transforms as mt
from monai.data import CacheDataset, Dataset

from ..core.errors import SegError
from ..core.fingerprint import settings_key
from ..core.log import log
from . import pipelines
from .loaders import LoaderDataset
from .patches import StoredPatches, StoredVolumes, open_volumes
from .sampling import SeededItems
from .store import Store

CacheMode = Literal["none", "memory", "store", "gpu", "disk"]  # disk: removed, refused naming store
STORE_MODES = ("store", "gpu")
REMOVED_MODES = {"disk": "store"}  # removed mode -> what replaces it
# Settings that change what training sees but not what preprocessing produces (not part of the store's key).
TRAINING_ONLY = {"predict_images", "batch_size", "samples_per_volume", "pos_fraction", "val_fraction", "fold",
                 "num_folds", "seed", "cache", "cache_dir", "num_workers", "patch_size", "name", "test_fraction",
                 "test_on"}


def preprocessing_key(dataset_type: str, settings: Mapping) -> str:
    """A short hash of `dataset_type` and every setting that shapes the preprocessed volumes (the store's key)."""
    return settings_key({"dataset": dataset_type, **{k: v for k, v in settings.items() if k not in TRAINING_ONLY}})


def refuse_removed_mode(mode: str) -> None:
    """SegError for a cache mode seg no longer has, naming its replacement."""
    if mode in REMOVED_MODES:
        raise SegError(f"--data.cache {mode} was removed: use --data.cache {REMOVED_MODES[mode]} (each case "
                       f"preprocessed once, keyed by every setting and source file, patches read by memory map)")


def with_indices(cases: list[dict]) -> list[dict]:
    """`cases`, each with its `index` in the list (validation counts each case once by it)."""
    return [{**case, "index": index} for index, case in enumerate(cases)]


def pipeline_datasets(train_cases: list[dict], val_cases: list[dict], preprocessing: list[mt.Transform],
                      augmentation: list[mt.Transform], mode: CacheMode, seed: int) -> tuple[SeededItems, Dataset]:
    """Training and validation datasets of MONAI pipelines (`none`; `memory`: the preprocessing cached in RAM);
    each training item's random transforms seeded from (seed, epoch, index) (`sampling.SeededItems`)."""
    if mode == "memory":
        announce_cache(train_cases + val_cases, mt.Compose(preprocessing))
    train_transform = mt.Compose(preprocessing + augmentation)
    return (SeededItems(cached_dataset(train_cases, train_transform, mode), train_transform, seed),
            cached_dataset(with_indices(val_cases), mt.Compose(preprocessing), mode))


def cached_dataset(cases: list[dict], transform: mt.Compose, mode: CacheMode) -> Dataset:
    """`cases` through `transform`, its deterministic prefix cached in RAM when `mode` is memory."""
    if mode == "memory":
        return CacheDataset(cases, transform, cache_rate=1.0, num_workers=None, progress=False)
    return Dataset(cases, transform)


def measure_preprocessing(case: dict, preprocessing: mt.Compose) -> tuple[float, int]:
    """Seconds to load and preprocess `case`, and the bytes of its image and label afterwards."""
    started = time.perf_counter()
    item = preprocessing(dict(case))
    seconds = time.perf_counter() - started
    nbytes = sum(item[key].element_size() * item[key].numel() for key in ("image", "label"))
    return seconds, int(nbytes)


def announce_cache(cases: list[dict], preprocessing: mt.Compose) -> None:
    """Preprocess one case and log what caching all of them in RAM will take (before it starts)."""
    seconds, nbytes = measure_preprocessing(cases[0], preprocessing)
    log.info(
        f"caching {len(cases)} cases in RAM: about {nbytes * len(cases) / 2**20:,.1f} MiB "
        f"({nbytes / 2**20:,.2f} MiB and {seconds:.2f} s to load and preprocess one case)"
    )


def free_memory(device: torch.device) -> int:
    """Bytes free on `device`: the accelerator's free memory, or the RAM the kernel says is available."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62  # unknown: do not refuse


def refuse_if_it_does_not_fit(store: Store, case_ids: list[str], device: torch.device) -> None:
    """SegError naming both sizes when the stored training volumes would not fit in `device`'s free memory."""
    needed = sum(store.array_path(case, role).stat().st_size for case in case_ids for role in ("image", "label"))
    free = free_memory(device)
    if needed > 0.8 * free:  # leave room for the network, its activations and the optimizer
        raise SegError(
            f"--data.cache gpu: the {len(case_ids)} training volumes take {needed / 2**30:,.2f} GiB, but "
            f"{device} has {free / 2**30:,.2f} GiB free (80% of it may be used); use --data.cache store "
            f"(memory-mapped from disk) instead"
        )


def stored_datasets(store: Store, train_ids: list[str], val_ids: list[str], device: Optional[torch.device],
                    settings: Mapping, label_transform: Any) -> tuple[StoredPatches, StoredVolumes]:
    """The training patches and validation volumes of `cache: store` (device None) or `gpu` (on `device`)."""
    if device is not None:
        refuse_if_it_does_not_fit(store, train_ids, device)
    train = StoredPatches(open_volumes(store, train_ids, device), settings["patch_size"],
                          settings["samples_per_volume"], settings["pos_fraction"], settings["seed"], label_transform)
    return train, StoredVolumes(open_volumes(store, val_ids), label_transform)


def training_datasets(datamodule) -> tuple[LoaderDataset, LoaderDataset]:
    """The training and validation datasets of a `VolumeDataModule`'s cache mode: its split's cases through its
    pipelines, or its store. Training items are drawn by (index, epoch) and seed themselves from them."""
    h = datamodule.hparams
    train, val = datamodule.train_cases, datamodule.val_cases
    if h.cache in STORE_MODES:
        device = datamodule.training_device() if h.cache == "gpu" else None
        stored = stored_datasets(datamodule.store(), [c["case"] for c in train], [c["case"] for c in val], device, h,
                                 datamodule.label_transform())
        return stored
    augmentation = pipelines.augmentation(datamodule.patch_size, h.pos_fraction, h.samples_per_volume)
    return pipeline_datasets(train, val, datamodule.preprocessing(), augmentation, h.cache, h.seed)
