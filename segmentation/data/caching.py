"""The cache modes of the datamodules: none, memory (MONAI CacheDataset), disk (MONAI PersistentDataset),
store (the crop-first preprocessed store, memory-mapped) and gpu (the store's training volumes held as
tensors on the accelerator, or in RAM on a CPU-only machine).

The disk cache lives in a folder keyed by every setting that shapes the preprocessed
volumes, so changing e.g. the spacing never reuses a stale cache. Each entry is written
beside its final name and renamed (a kill never leaves half an entry), and an entry that
fails to load is rebuilt with a warning naming it. Before caching starts, one case is
preprocessed to announce the expected size and time.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import torch
from lightning.pytorch.utilities import rank_zero_info
from monai import transforms as mt
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.utils import convert_to_tensor

from ..core.errors import SegError
from ..core.storage import write_atomically
from .patches import StoredPatches, StoredVolumes, open_volumes
from .store import Store

CacheMode = Literal["none", "memory", "disk", "store", "gpu"]
STORE_MODES = ("store", "gpu")

# Settings that change what training sees but not what preprocessing produces (not part of the cache key).
TRAINING_ONLY = {"predict_images", "batch_size", "samples_per_volume", "pos_fraction", "val_fraction", "fold",
                 "num_folds", "seed", "cache", "cache_dir", "num_workers", "patch_size", "name", "test_fraction",
                 "test_on"}


def preprocessing_key(dataset_type: str, settings: Mapping) -> str:
    """A short hash of `dataset_type` and every setting that shapes the preprocessed volumes."""
    shaping = {k: v for k, v in settings.items() if k not in TRAINING_ONLY}
    text = json.dumps({"dataset": dataset_type, **shaping}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cached_dataset(cases: list[dict], transform: mt.Compose, mode: CacheMode, disk_folder: Path) -> Dataset:
    """`cases` through `transform`, its deterministic prefix cached as `mode` says (disk: in `disk_folder`)."""
    if mode == "memory":
        return CacheDataset(cases, transform, cache_rate=1.0, num_workers=None, progress=False)
    if mode == "disk":
        return SelfHealingDiskCache(cases, transform, cache_dir=disk_folder)
    return Dataset(cases, transform)


def measure_preprocessing(case: dict, preprocessing: mt.Compose) -> tuple[float, int]:
    """Seconds to load and preprocess `case`, and the bytes of its image and label afterwards."""
    started = time.perf_counter()
    item = preprocessing(dict(case))
    seconds = time.perf_counter() - started
    nbytes = sum(item[key].element_size() * item[key].numel() for key in ("image", "label"))
    return seconds, int(nbytes)


def announce_cache(cases: list[dict], preprocessing: mt.Compose, mode: CacheMode, where: Path) -> None:
    """Preprocess one case and log what caching all of them will take (before it starts)."""
    seconds, nbytes = measure_preprocessing(cases[0], preprocessing)
    place = "RAM" if mode == "memory" else f"disk ({where})"
    rank_zero_info(
        f"caching {len(cases)} cases in {place}: about {nbytes * len(cases) / 2**20:,.1f} MiB "
        f"({nbytes / 2**20:,.2f} MiB and {seconds:.2f} s to load and preprocess one case)"
    )


class SelfHealingDiskCache(PersistentDataset):
    """MONAI's PersistentDataset whose entries are written atomically in place and rebuilt when they do not load.

    MONAI writes an entry in the system's temporary folder and moves it, which across file systems
    is a copy that a kill can truncate; it also raises, every epoch, on an entry truncated that way.
    """

    def _cachecheck(self, item_transformed: Any) -> Any:
        if self.cache_dir is None:
            return super()._cachecheck(item_transformed)
        entry = self.cache_dir / f"{self.hash_func(item_transformed).decode('utf-8')}{self.transform_hash}.pt"
        if entry.is_file():
            try:
                return torch.load(entry, weights_only=True)
            except Exception as err:  # truncated, garbage or foreign bytes: all mean "build it again"
                warnings.warn(f"disk cache entry {entry} (case {item_transformed.get('case', '?')}) does not load "
                              f"({type(err).__name__}); rebuilding it", stacklevel=2)
                entry.unlink(missing_ok=True)
        result = self._pre_transform(deepcopy(item_transformed))
        self._write(result, entry)
        return result

    def _write(self, result: Any, entry: Path) -> None:
        tensors = convert_to_tensor(result, convert_numeric=False, track_meta=self.track_meta)
        try:
            write_atomically(entry, lambda partial: torch.save(tensors, partial))
        except (OSError, RuntimeError) as err:  # disk full or read-only: train on, uncached, and say so
            warnings.warn(f"could not write disk cache entry {entry} ({err}); this case is preprocessed "
                          f"again each time it is read", stacklevel=2)


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
