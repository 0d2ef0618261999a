"""The crop-first preprocessed store (`--data.cache store` and `gpu`): each case preprocessed once, cropped, compact.

Per case, in `<cache folder>/store_<preprocessing key>/`:

* `<case>.image.npy`: the preprocessed image (channels first, RAS, resampled, normalised), cropped to the box
  where any channel differs from its minimum or the label is nonzero, as float16;
* `<case>.label.npy`: the label map in the dataset's own values (before any region transform), uint8, cropped
  further to its own nonzero box (a tumour's box is a small part of the head's; outside it every voxel is 0);
* `<case>.foreground.npy`: up to MAX_LOCATIONS voxel coordinates per label value (int16, rows grouped by value);
* `<case>.json`: the box (and the label's box inside it), the full preprocessed shape, each channel's
  background value (what padding back restores exactly), per label value its voxel count and its rows in the
  foreground file, and the source files' fingerprints (small: 1,000+ records are read at every start).

Uncompressed `.npy` files are opened by memory map, so a random patch reads only its own voxels. Each file is
written beside its final name and renamed; the json is written last and is what marks a case as stored, so a
kill during the build leaves no case that a later run reads. A case whose source files changed (path, size,
mtime) is rebuilt; a changed setting is another folder (the key), never stale content.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from monai.transforms.utils import generate_spatial_bounding_box

from ..core.faults import fault_point, signal_point
from ..core.fingerprint import file_stamps
from ..core.formatting import format_duration
from ..core.locking import exclusive
from ..core.log import log
from ..core.storage import StorageError, is_write_refusal, write_atomically, write_refusal_in

STORE_FORMAT = 4  # bump when the stored content changes, so older stores are not read
ROLES = ("image", "label", "foreground")  # the arrays of a stored case
MAX_LOCATIONS = 10_000  # foreground voxels kept per label value (nnU-Net keeps a similar sub-sample)


@dataclass
class StoredCase:
    """What `<case>.json` records about one stored case."""

    case: str
    box_start: list[int]
    label_start: list[int]  # where `<case>.label.npy` starts inside the box
    full_shape: list[int]
    background: list[float]
    locations: dict[str, list[int]]  # label value -> [first, stop) rows of `<case>.foreground.npy`
    counts: dict[str, int]
    sources: dict[str, list]
    format: int = STORE_FORMAT


def source_files(case: dict) -> list[str]:
    """Every file a case is made of: its image channels and its label."""
    images = case["image"] if isinstance(case["image"], (list, tuple)) else [case["image"]]
    return [str(p) for p in images] + [str(case["label"])]


def content_box(image: np.ndarray, label: np.ndarray) -> tuple[list[int], list[int]]:
    """[start, stop) per spatial axis of the voxels where a channel differs from its minimum or the label is set
    (`image` before normalisation)."""
    mask = (image != image.reshape(image.shape[0], -1).min(axis=1)[:, None, None, None]).any(axis=0) | (label[0] > 0)
    if not mask.any():  # nothing but background: keep the whole volume (MONAI's box would be empty)
        return [0, 0, 0], list(mask.shape)
    starts, stops = generate_spatial_bounding_box(mask[None], select_fn=lambda voxels: voxels)
    return [int(a) for a in starts], [int(b) for b in stops]


def nonzero_box(label: np.ndarray) -> tuple[list[int], list[int]]:
    """[start, stop) per spatial axis of a (1, X, Y, Z) label's nonzero voxels; one voxel at 0 when there are none."""
    if not label.any():
        return [0, 0, 0], [1, 1, 1]
    starts, stops = generate_spatial_bounding_box(label, select_fn=lambda voxels: voxels > 0)
    return [int(a) for a in starts], [int(b) for b in stops]


def background_values(raw: np.ndarray, normalised: np.ndarray) -> list[float]:
    """Per channel, the normalised value of the raw background (the raw minimum): what lies outside the box."""
    values = []
    for channel in range(raw.shape[0]):
        at_minimum = raw[channel] == raw[channel].min()
        values.append(float(normalised[channel][at_minimum].flat[0]))
    return values


def foreground_locations(label: np.ndarray) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Up to MAX_LOCATIONS (x, y, z) voxels per nonzero label value, sub-sampled reproducibly, as one int16 array
    grouped by value, and label value -> [first, stop) rows of it."""
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = []
    rows: dict[str, list[int]] = {}
    for value in np.unique(label):
        if value == 0:
            continue
        where = np.argwhere(label[0] == value)
        if len(where) > MAX_LOCATIONS:
            where = where[np.sort(rng.choice(len(where), MAX_LOCATIONS, replace=False))]
        first = sum(len(part) for part in parts)
        rows[str(int(value))] = [first, first + len(where)]
        parts.append(where.astype(np.int16))
    return (np.concatenate(parts) if parts else np.zeros((0, 3), np.int16)), rows


class Store:
    """The store folder of one preprocessing key: which cases are stored, building the others, reading them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def meta_path(self, case_id: str) -> Path:
        """The json record of a case (its commit: written last)."""
        return self.folder / f"{case_id}.json"

    def array_path(self, case_id: str, role: str) -> Path:
        """The `.npy` file of one of a case's arrays (`ROLES`)."""
        return self.folder / f"{case_id}.{role}.npy"

    def stored(self, case: dict) -> Optional[StoredCase]:
        """The record of `case` if it is stored, complete and built from its current source files; else None."""
        path = self.meta_path(case["case"])
        try:
            record = StoredCase(**json.loads(path.read_text()))
            current = file_stamps(source_files(case))
        except (OSError, ValueError, TypeError):
            return None
        if record.format != STORE_FORMAT or record.sources != current:
            return None
        if not all(self.array_is_whole(case["case"], role) for role in ROLES):
            return None
        return record

    def array_is_whole(self, case_id: str, role: str) -> bool:
        """Whether a stored array's file holds all the bytes its header promises (a truncated one is rebuilt)."""
        path = self.array_path(case_id, role)
        if not path.is_file():
            return False
        try:
            np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            log.warning(f"store: {path} is unreadable ({err}); case {case_id} is stored again")
            return False
        return True

    def missing(self, cases: list[dict]) -> list[dict]:
        """The cases that must be (re)built: never stored, half-written, or changed since."""
        return [case for case in cases if self.stored(case) is None]

    def build_case(self, case: dict, spatial: Callable[[dict], dict], normalise: Callable[[dict], dict]) -> StoredCase:
        """Preprocess `case`, crop it to its content and write its arrays, then its json (the commit).

        The box is found before normalisation, where the background is one value per channel (zero around a
        skull-stripped brain, the scanner's fill value around a CT's field of view); the intensity transforms
        map it to one value again, which is recorded so that padding back restores the volume exactly.
        """
        sources = file_stamps(source_files(case))  # before reading: a file changed meanwhile is rebuilt next time
        item = spatial(dict(case))
        raw = torch.as_tensor(item["image"]).float().numpy().copy()  # (normalising may work in place)
        label = np.asarray(torch.as_tensor(item["label"]).numpy())
        starts, stops = content_box(raw, label)
        image = np.asarray(torch.as_tensor(normalise(item)["image"]).float().numpy())
        crop = (slice(None), *(slice(a, b) for a, b in zip(starts, stops)))
        cropped_label = np.ascontiguousarray(label[crop]).astype(np.uint8)
        foreground, rows = foreground_locations(cropped_label)
        label_starts, label_stops = nonzero_box(cropped_label)
        record = StoredCase(
            case=case["case"], box_start=starts, label_start=label_starts, full_shape=list(image.shape[1:]),
            background=background_values(raw, image), locations=rows,
            counts={str(int(v)): int(n) for v, n in zip(*np.unique(cropped_label, return_counts=True)) if v},
            sources=sources,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        label_crop = (slice(None), *(slice(a, b) for a, b in zip(label_starts, label_stops)))
        arrays: dict[str, np.ndarray] = {
            "image": np.ascontiguousarray(image[crop]).astype(np.float16),
            "label": np.ascontiguousarray(cropped_label[label_crop]), "foreground": foreground,
        }
        for role, array in arrays.items():
            write_atomically(self.array_path(case["case"], role), partial(_write_npy, array=array))
        fault_point("store-before-commit")
        write_atomically(self.meta_path(case["case"]), lambda p: p.write_text(json.dumps(asdict(record))))
        return record

    def build(self, cases: list[dict], spatial: Callable[[dict], dict], normalise: Callable[[dict], dict],
              workers: int, say: Callable[[str], None] = print) -> int:
        """Build every missing case in parallel threads, saying progress; returns how many were built. One process
        at a time (DDP ranks started together): the others wait, then find the cases stored."""
        try:
            with exclusive(self.folder.with_name(f".{self.folder.name}.lock")):  # (hidden: not a store_* folder)
                return self._build(cases, spatial, normalise, workers, say)
        except OSError as err:
            if not is_write_refusal(err):
                raise
            raise StorageError(f"{write_refusal_in(err)}; or build the store on another disk with --data.cache_dir") \
                from err

    def _build(self, cases: list[dict], spatial: Callable[[dict], dict], normalise: Callable[[dict], dict],
               workers: int, say: Callable[[str], None]) -> int:
        todo = self.missing(cases)
        if not todo:
            return 0
        started = time.perf_counter()
        first = self.build_case(todo[0], spatial, normalise)
        per_case = self.case_bytes(first.case)
        say(f"store: building {len(todo)} of {len(cases)} cases in {self.folder}: about "
            f"{per_case * len(cases) / 2**20:,.0f} MiB for all ({per_case / 2**20:,.1f} MiB and "
            f"{time.perf_counter() - started:.1f} s for the first)")
        done, report_every = 1, max(1, len(todo) // 10)
        signal_point(f"store{done}", 0)
        pool = ThreadPoolExecutor(max(1, workers))  # decompression and resampling release the GIL
        try:
            for _ in pool.map(lambda case: self.build_case(case, spatial, normalise), todo[1:]):
                done += 1
                signal_point(f"store{done}", 0)
                if done % report_every == 0 or done == len(todo):
                    elapsed = time.perf_counter() - started
                    left = elapsed / done * (len(todo) - done)
                    say(f"store: {done}/{len(todo)} cases, {format_duration(elapsed)} so far, "
                        f"about {format_duration(left)} left")
        finally:  # a stop (a signal, an error) waits for the cases being written only, not for every queued one
            pool.shutdown(wait=True, cancel_futures=True)
        return len(todo)

    def case_bytes(self, case_id: str) -> int:
        """Bytes one stored case takes on disk (arrays and record)."""
        return self.meta_path(case_id).stat().st_size + sum(self.array_path(case_id, role).stat().st_size
                                                            for role in ROLES)

    def record(self, case_id: str) -> StoredCase:
        """The json record of a stored case (call after `build`)."""
        return StoredCase(**json.loads(self.meta_path(case_id).read_text()))

    def arrays(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The cropped image (float16) and label (uint8, from its record's `label_start` in the image's box) of a
        stored case, memory-mapped (read on access)."""
        return (np.load(self.array_path(case_id, "image"), mmap_mode="r"),
                np.load(self.array_path(case_id, "label"), mmap_mode="r"))

    def foreground(self, case_id: str) -> np.ndarray:
        """The stored foreground locations of a case: (N, 3) int16 rows, grouped as its record's `locations` say."""
        return np.load(self.array_path(case_id, "foreground"))


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # (a path would get `.npy` appended)
        np.save(handle, array)
