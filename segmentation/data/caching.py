"""The datasets of each cache mode: none and memory (MONAI pipelines; memory: MONAI CacheDataset), store (the
crop-first preprocessed store, memory-mapped) and gpu (the store's training volumes held as tensors on the
accelerator, or in RAM on a CPU-only machine; refused with the numbers where they would not fit beside training:
`core.memory.GpuCacheBudget`).

Validation items carry `index`, their position in the validation split, so that validation counts each case
once on any number of devices. Before a memory cache fills, one case is preprocessed to announce the size and
time it will take. The former `disk` mode (MONAI PersistentDataset) is refused with a pointer to `store`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

import torch
from monai import transforms as mt
from monai.data import CacheDataset, Dataset

from ..core.errors import SegError
from ..core.fingerprint import settings_key
from ..core.log import log
from ..core.memory import GpuCacheBudget, measure_step_peak, optimizer_copies, parameter_bytes
from . import pipelines
from .loaders import LoaderDataset
from .patches import StoredPatches, StoredVolumes, open_volumes
from .sampling import SeededItems
from .store import Store

CacheMode = Literal["none", "memory", "store", "gpu", "disk"]  # disk: removed, refused naming store
STORE_MODES = ("store", "gpu")
REMOVED_MODES = {"disk": "store"}  # removed mode -> what replaces it
Budget = Callable[[torch.device], GpuCacheBudget]  # what `cache: gpu` would put on a device
# Settings that change what training sees but not what preprocessing produces (not part of the store's key).
TRAINING_ONLY = {"predict_images", "batch_size", "samples_per_volume", "pos_fraction", "val_fraction", "fold",
                 "num_folds", "seed", "cache", "cache_dir", "num_workers", "patch_size", "name", "test_fraction",
                 "test_on", "steps_per_epoch", "sampling_seed"}


def preprocessing_key(dataset_type: str, settings: Mapping) -> str:
    """A short hash of `dataset_type` and every setting that shapes the preprocessed volumes (the store's key)."""
    return settings_key({"dataset": dataset_type, **{k: v for k, v in settings.items() if k not in TRAINING_ONLY}})


def sampling_seed(settings: Mapping) -> int:
    """The seed of the training epochs' shuffle, patches and augmentation: `sampling_seed`, else the split's `seed`."""
    chosen = settings.get("sampling_seed")
    return int(settings["seed"] if chosen is None else chosen)


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


def step_autocast(precision: Any) -> Optional[torch.dtype]:
    """The autocast dtype of a trainer's `precision` (bf16-mixed, 16-mixed), None for the others."""
    text = str(precision)
    return torch.bfloat16 if text.startswith("bf16-mixed") else torch.float16 if text.startswith("16-mixed") else None


def gpu_cache_budget(store: Store, case_ids: list[str], device: torch.device, trainer: Any = None,
                     batch_shape: Optional[tuple[int, ...]] = None) -> GpuCacheBudget:
    """What `cache: gpu` would put on `device`: the stored training volumes (all of them, on every rank), and with
    a trainer its model's parameters, its optimizer's state and, on CUDA, one training step of a `batch_shape`
    batch (measured: `core.memory.measure_step_peak`); DDP processes on the CPU each hold theirs in its RAM."""
    volumes = sum(store.array_path(case, role).stat().st_size for case in case_ids for role in ("image", "label"))
    free = free_memory(device)
    model = getattr(trainer, "lightning_module", None) if trainer is not None else None
    hparams = getattr(model, "hparams", None) or {}
    peak = 0
    fitting = getattr(getattr(trainer, "state", None), "fn", None) == "fit"  # validate/test train no step
    if fitting and model is not None and device.type == "cuda" and batch_shape is not None and parameter_bytes(model):
        peak = measure_step_peak(model, batch_shape, device, step_autocast(getattr(trainer, "precision", None)))
    ranks = int(getattr(trainer, "num_devices", 1) or 1) if device.type == "cpu" and trainer is not None else 1
    return GpuCacheBudget(str(device), free, volumes, len(case_ids), ranks, parameter_bytes(model),
                          optimizer_copies(hparams.get("optimizer")), peak)


def stored_datasets(store: Store, train_ids: list[str], val_ids: list[str], device: Optional[torch.device],
                    settings: Mapping, label_transform: Any, budget: Optional[Budget] = None
                    ) -> tuple[StoredPatches, StoredVolumes]:
    """The training patches and validation volumes of `cache: store` (device None) or `gpu` (on `device`, after
    `budget(device)` said they fit beside training: `GpuCacheBudget.refuse_if_short`)."""
    if device is not None:
        fits = budget(device) if budget is not None else gpu_cache_budget(store, train_ids, device)
        fits.refuse_if_short()
        log.info(f"cache: gpu: {fits.parts()}: {fits.needed / 2**30:,.2f} GiB of {fits.free / 2**30:,.2f} GiB free "
                 f"on {device}")
    train = StoredPatches(open_volumes(store, train_ids, device), settings["patch_size"],
                          settings["samples_per_volume"], settings["pos_fraction"], sampling_seed(settings),
                          label_transform)
    return train, StoredVolumes(open_volumes(store, val_ids), label_transform)


def training_datasets(datamodule) -> tuple[LoaderDataset, LoaderDataset]:
    """The training and validation datasets of a `VolumeDataModule`'s cache mode: its split's cases through its
    pipelines, or its store. Training items are drawn by (index, epoch) and seed themselves from them."""
    h = datamodule.hparams
    train, val = datamodule.train_cases, datamodule.val_cases
    if h.cache in STORE_MODES:
        device = datamodule.training_device() if h.cache == "gpu" else None
        train_ids, store = [c["case"] for c in train], datamodule.store()
        trainer = getattr(datamodule, "trainer", None)
        batch_shape = (h.batch_size, datamodule.num_channels, *datamodule.patch_size)
        return stored_datasets(store, train_ids, [c["case"] for c in val], device, h, datamodule.label_transform(),
                               lambda on: gpu_cache_budget(store, train_ids, on, trainer, batch_shape))
    augmentation = pipelines.augmentation(datamodule.patch_size, h.pos_fraction, h.samples_per_volume)
    return pipeline_datasets(train, val, datamodule.preprocessing(), augmentation, h.cache, sampling_seed(h))
