"""The cache modes of the datamodules: none, memory (MONAI CacheDataset), disk (MONAI PersistentDataset).

The disk cache lives in a folder keyed by every setting that shapes the preprocessed
volumes, so changing e.g. the spacing never reuses a stale cache. Before caching starts,
one case is preprocessed to announce the expected size and time.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal, Mapping

from lightning.pytorch.utilities import rank_zero_info
from monai import transforms as mt
from monai.data import CacheDataset, Dataset, PersistentDataset

CacheMode = Literal["none", "memory", "disk"]

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
        return PersistentDataset(cases, transform, cache_dir=disk_folder)
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
