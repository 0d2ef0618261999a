"""Training patches and validation volumes read from the store (`data.store`), on the CPU or on the GPU.

A training item is `samples_per_volume` patches of one volume, drawn as the MONAI pipeline of
the other cache modes draws them (`RandCropByPosNegLabeld`), so that the cache mode never
changes what the network learns: with probability `pos_fraction` around a foreground voxel
(a label value chosen in proportion to its voxels, then one of its stored locations), else
around any voxel; kept inside the volume where it is larger than the patch; then flipped per
axis and scaled/shifted in intensity (±10%). Every random choice comes from a
generator seeded by (seed, epoch, volume index): an item is the same whichever worker,
process or resumed run draws it.

The arrays are memory maps (`store`: a patch reads only its own voxels) or tensors held in
RAM or on the accelerator (`gpu`: slicing and flips run there). Patches travel compact (float16
image, uint8 label, the drawn intensity change beside them); `finish_patches` applies the
intensity change and the label transform once the batch is on the device (BraTS's regions for the whole batch
at once: `batch_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from typing_extensions import override

from .store import Store, StoredCase

Array = Union[np.ndarray, torch.Tensor]
INTENSITY = "intensity"  # a training patch's drawn (scale, shift), applied by `finish_patches`


@dataclass
class StoredVolume:
    """One stored case: its record, its cropped image (C, X, Y, Z) and label (1, X', Y', Z', from
    `record.label_start` in the image's box) arrays, and its foreground locations (in the image's box, rows grouped
    by label value as `record.locations` say)."""

    record: StoredCase
    image: Array
    label: Array
    foreground: np.ndarray


def open_volumes(store: Store, case_ids: Sequence[str], device: Optional[torch.device] = None) -> list[StoredVolume]:
    """The stored cases, memory-mapped (`device` None) or loaded as tensors onto `device` (RAM or accelerator)."""
    volumes = []
    for case_id in case_ids:
        image: Array
        label: Array
        image, label = store.arrays(case_id)
        if device is not None:
            image, label = (torch.from_numpy(np.array(a)).to(device) for a in (image, label))  # (copies the map)
        volumes.append(StoredVolume(store.record(case_id), image, label, store.foreground(case_id)))
    return volumes


def start_around(location: Sequence[int], shape: Sequence[int], patch: Sequence[int]) -> list[int]:
    """Patch start per axis that holds `location`, as centred as the volume allows (inside it when it is larger)."""
    return [min(max(c - p // 2, min(0, s - p)), max(0, s - p)) for c, s, p in zip(location, shape, patch)]


def random_start(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator) -> list[int]:
    """The start of a patch around a uniformly drawn voxel (kept inside the volume as `start_around` does).

    Drawing the voxel, not the start, places patches at the volume's border as often as MONAI's negative
    samples do; uniform starts would cover a border voxel rarely (1 / (size - patch + 1) of the patches).
    """
    return start_around([int(rng.integers(0, s)) for s in shape], shape, patch)


def read_window(array: Array, starts: Sequence[int], size: Sequence[int], fill: Sequence[float],
                flips: Sequence[int] = (), dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A new tensor (on the array's device, of `dtype` or the array's) holding array[:, starts:starts+size]
    flipped along the `flips` axes (1..3); outside the array, `fill` per channel.

    On the CPU (memory maps, and tensors held in RAM) the window is copied once, already flipped, by NumPy (whose
    reversed views cost nothing; torch's flip is a second copy), then converted once into the output: a 4 x 128³
    float16 patch takes ~9 ms instead of ~60 ms as slice + flip + pad + convert.
    """
    if isinstance(array, torch.Tensor) and array.device.type == "cpu":
        array = array.numpy()  # (shares the tensor's memory)
    inner = [(max(0, a), max(0, a, min(s, a + n))) for a, s, n in zip(starts, array.shape[1:], size)]  # may be empty
    window = (slice(None), *(slice(lo, hi) for lo, hi in inner))
    source = array[window]
    if isinstance(source, np.ndarray):
        reverse = tuple(slice(None, None, -1) if axis in flips else slice(None) for axis in range(4))
        source = torch.from_numpy(np.array(source[reverse], order="C"))  # our own copy, never the memory map
    else:
        source = source.flip(list(flips)) if flips else source.clone()  # our own copy, not a view of the volume
    dtype = dtype or source.dtype
    if list(source.shape[1:]) == list(size):
        return source.to(dtype)
    out = torch.empty((array.shape[0], *size), dtype=dtype, device=source.device)
    for channel, value in enumerate(fill if len(fill) == len(out) else [fill[0]] * len(out)):
        out[channel].fill_(float(value))  # (a scalar kernel argument: no host-to-device copy per window on a GPU)
    inside = (slice(None), *window_slices(inner, starts, size, flips))
    out[inside] = source
    return out


def label_starts(record: StoredCase, starts: Sequence[int]) -> list[int]:
    """A window's `starts` in the image's box as starts in the stored label's own box."""
    return [a - b for a, b in zip(starts, record.label_start)]


def window_slices(inner: Sequence[tuple[int, int]], starts: Sequence[int], size: Sequence[int],
                  flips: Sequence[int]) -> list[slice]:
    """Where the part `inner` of the array lies in a window at `starts` of `size`, once flipped along `flips`."""
    slices = []
    for axis, ((lo, hi), start, n) in enumerate(zip(inner, starts, size), start=1):
        first, stop = lo - start, hi - start
        slices.append(slice(n - stop, n - first) if axis in flips else slice(first, stop))
    return slices


class StoredPatches(Dataset):
    """Training items from stored volumes: `samples_per_volume` random patches each (see the module's text),
    compact: the image in the store's float16, the label map in uint8 and the drawn intensity change beside them,
    a third of the bytes a worker hands over and the loader moves to the device; `finish_patches` makes the
    batch what the network takes once it is there.

    Indexed by `(volume index, epoch)` or `(volume index, epoch, draw position)` (what `EpochSeededSampler`
    yields) or by a volume index alone (epoch 0).
    """

    def __init__(self, volumes: list[StoredVolume], patch_size: Sequence[int], samples_per_volume: int,
                 pos_fraction: float, seed: int, label_transform: Optional[Callable[[dict], dict]] = None):
        self.volumes, self.patch_size = volumes, list(patch_size)
        self.samples_per_volume, self.pos_fraction, self.seed = samples_per_volume, pos_fraction, seed
        self.label_transform = label_transform

    def __len__(self) -> int:
        return len(self.volumes)

    @override
    def __getitem__(self, key: Union[int, tuple[int, ...]]) -> list[dict]:
        index, epoch, *draw = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng([self.seed, epoch, index, *draw])  # draw: `sampling`'s position with replacement
        return [self.patch(self.volumes[index], rng) for _ in range(self.samples_per_volume)]

    def patch(self, volume: StoredVolume, rng: np.random.Generator) -> dict:
        """One augmented patch of `volume` with its label, every choice drawn from `rng`."""
        shape = volume.image.shape[1:]
        locations = volume.record.locations
        if locations and rng.random() < self.pos_fraction:
            values = sorted(locations, key=int)
            voxels = np.array([volume.record.counts[value] for value in values], dtype=float)
            first, stop = locations[values[int(rng.choice(len(values), p=voxels / voxels.sum()))]]
            chosen = volume.foreground[first + int(rng.integers(stop - first))]
            starts = start_around([int(c) for c in chosen], shape, self.patch_size)
        else:
            starts = random_start(shape, self.patch_size, rng)
        flips = [axis for axis in (1, 2, 3) if rng.random() < 0.5]
        scale = 1.0 + float(rng.uniform(-0.1, 0.1)) if rng.random() < 0.5 else 1.0
        shift = float(rng.uniform(-0.1, 0.1)) if rng.random() < 0.5 else 0.0
        return {"image": read_window(volume.image, starts, self.patch_size, volume.record.background, flips),
                "label": read_window(volume.label, label_starts(volume.record, starts), self.patch_size, [0], flips),
                INTENSITY: torch.tensor([scale, shift], dtype=torch.float32)}


class StoredVolumes(Dataset):
    """Validation items: whole preprocessed volumes, padded back from their stored box to their full shape.

    Outside the box every voxel held its channel's background value, so the padded volume equals the
    preprocessed one (within float16 rounding) and sliding-window Dice is unchanged.
    """

    def __init__(self, volumes: list[StoredVolume], label_transform: Optional[Callable[[dict], dict]] = None):
        self.volumes, self.label_transform = volumes, label_transform

    def __len__(self) -> int:
        return len(self.volumes)

    @override
    def __getitem__(self, index: int) -> dict:
        volume = self.volumes[index]
        record = volume.record
        starts = [-a for a in record.box_start]  # the full volume's origin, in the box's coordinates
        image = read_window(volume.image, starts, record.full_shape, record.background, dtype=torch.float32)
        label = read_window(volume.label, label_starts(record, starts), record.full_shape, [0])
        item = {"case": record.case, "index": index, "image": image, "label": label}  # (validation counts each once)
        return float_label(self.label_transform, item)


def finish_patches(batch: dict, label_transform: Optional[Callable[[dict], dict]]) -> dict:
    """A batch of `StoredPatches` as the network takes it, computed where the batch is (the accelerator after
    transfer): image float32 scaled and shifted per patch as drawn, label through `label_transform` as float32.
    Other batches are returned unchanged."""
    if INTENSITY not in batch:
        return batch
    intensity = batch[INTENSITY].to(device=batch["image"].device, dtype=torch.float32)
    per_patch = (-1,) + (1,) * (batch["image"].dim() - 1)
    image = batch["image"].to(torch.float32)
    image.mul_(intensity[:, 0].view(per_patch)).add_(intensity[:, 1].view(per_patch))
    labels = batch_targets(label_transform, batch["label"])
    return {**{k: v for k, v in batch.items() if k != INTENSITY}, "image": image, "label": labels}


def batch_targets(label_transform: Optional[Callable[[dict], dict]], labels: torch.Tensor) -> torch.Tensor:
    """A batch of label maps as float32 targets, where the batch is: as they are without `label_transform`, through
    its `batch_targets` (one operation for the whole batch: BraTS's regions) where it has one, else map by map."""
    if label_transform is None:
        return labels.float()
    whole_batch = getattr(label_transform, "batch_targets", None)
    if whole_batch is not None:
        return whole_batch(labels).float()
    return torch.stack([float_label(label_transform, {"label": label})["label"] for label in labels])


def float_label(label_transform: Optional[Callable[[dict], dict]], item: dict) -> dict:
    """`item` through `label_transform` (if any), its label as float32 (what the losses take)."""
    item = label_transform(item) if label_transform is not None else item
    return {**item, "label": item["label"].float()}
