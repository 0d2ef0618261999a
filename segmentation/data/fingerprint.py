"""The dataset fingerprint: spacings, shapes, cropped sizes and foreground intensities that `seg plan` plans from.

Modelled on nnU-Net v2's fingerprint. Per case: the spacing, the shape and the shape after cropping to the
bounding box of the voxels nonzero in any image channel, the voxels of each label value, and the intensities
of each channel over the foreground (label > 0 inside that box, as nnU-Net crops before it samples). Over the
dataset: each channel's foreground samples of every case pooled, their mean, std, median, min, max and 0.5th
and 99.5th percentiles (`np.percentile`), and the median over cases of the fraction of voxels the crop keeps.

Every axis is in RAS order (the file's axes permuted and flipped by `io_orientation`, as the pipeline's
reorientation leaves them), spacings in mm.

One difference from nnU-Net: our per-case samples are deterministic — every foreground voxel when a case has
at most `FOREGROUND_SAMPLES` of them, else `FOREGROUND_SAMPLES` voxels evenly strided through them in C order —
where nnU-Net draws a fixed number per case at random with replacement (10^7 over the dataset). So a case
with little foreground weighs less in the pooled statistics here, and a fingerprint never changes between runs.
The samples are float32 (nnU-Net reads images as float32); each case's exact foreground mean, std, min, max
and count (float64) are kept as well.

The case fingerprints are computed by the up-front check (`checks.check_dataset`) from the arrays it reads
anyway; their samples live in a sidecar `.npy` per case in the check's cache folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from nibabel.orientations import apply_orientation, io_orientation

from ..core.errors import SegError

FOREGROUND_SAMPLES = 10_000  # per case and channel
INTENSITY_KEYS = ("mean", "std", "median", "min", "max", "percentile_00_5", "percentile_99_5")


@dataclass
class CaseFingerprint:
    """What one good case contributes to the dataset fingerprint (RAS axis order, mm)."""

    case: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    cropped_shape: tuple[int, int, int]  # the bounding box of the voxels nonzero in any channel
    class_voxels: dict[int, int]  # label value -> voxels (0 included)
    foreground: list[dict[str, float]]  # per channel, exact over label > 0: mean, std, min, max, count
    samples_file: str = field(default="", compare=False)  # the sidecar .npy of `samples` ("" while in memory)
    samples: Optional[np.ndarray] = field(default=None, repr=False, compare=False)  # (channels, n) float32

    def foreground_samples(self) -> np.ndarray:
        """The case's foreground samples, (channels, n) float32: held in memory or read from the sidecar."""
        if self.samples is not None:
            return self.samples
        return np.load(self.samples_file)

    def relative_size_after_cropping(self) -> float:
        """The fraction of the case's voxels that cropping to the nonzero region keeps."""
        return float(np.prod(self.cropped_shape) / np.prod(self.shape))

    def to_entry(self) -> dict[str, Any]:
        """A JSON-able copy without the samples (for the check cache)."""
        entry = asdict(self)
        del entry["samples"], entry["samples_file"]
        entry["class_voxels"] = {str(k): v for k, v in self.class_voxels.items()}
        return entry

    @classmethod
    def from_entry(cls, entry: dict[str, Any], samples_file: str) -> CaseFingerprint:
        """The fingerprint `to_entry` wrote, its samples in `samples_file`."""
        spacing = [float(z) for z in entry["spacing"]]
        return cls(case=entry["case"], spacing=(spacing[0], spacing[1], spacing[2]), shape=three(entry["shape"]),
                   cropped_shape=three(entry["cropped_shape"]),
                   class_voxels={int(k): int(v) for k, v in entry["class_voxels"].items()},
                   foreground=[dict(stats) for stats in entry["foreground"]], samples_file=samples_file)


def ras_channels(images: Sequence[np.ndarray], affine: np.ndarray) -> list[np.ndarray]:
    """The 3D channel arrays of a case in RAS axis order: one 4D file (X, Y, Z, C), or one 3D file per channel."""
    if len(images) == 1 and images[0].ndim == 4:
        channels = [images[0][..., c] for c in range(images[0].shape[3])]
    else:
        channels = [image.reshape(image.shape[:3]) for image in images]
    orientation = io_orientation(affine)
    return [apply_orientation(channel, orientation) for channel in channels]


def nonzero_box(channels: Sequence[np.ndarray]) -> tuple[slice, ...]:
    """The bounding box of the voxels nonzero in any channel (the whole volume when every voxel is zero)."""
    nonzero = np.zeros(channels[0].shape, dtype=bool)
    for channel in channels:
        nonzero |= channel != 0
    box = []
    for axis in range(3):
        hits = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else slice(0, nonzero.shape[axis]))
    return tuple(box)


def strided(values: np.ndarray, count: int = FOREGROUND_SAMPLES) -> np.ndarray:
    """All of `values` when there are at most `count`, else `count` of them evenly strided (first and last kept)."""
    if values.size <= count:
        return values
    return values[np.linspace(0, values.size - 1, count).astype(np.int64)]


def foreground_stats(values: np.ndarray) -> dict[str, float]:
    """Exact mean, std, min, max (float64) and count of one channel's foreground voxels (zeros when none)."""
    if not values.size:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "count": 0}
    return {"mean": float(np.mean(values, dtype=np.float64)), "std": float(np.std(values, dtype=np.float64)),
            "min": float(values.min()), "max": float(values.max()), "count": int(values.size)}


def measure_case(case: str, images: Sequence[np.ndarray], label: np.ndarray, affine: np.ndarray,
                 spacing: Sequence[float], class_voxels: dict[int, int]) -> CaseFingerprint:
    """The fingerprint of one case from its arrays as read: file axes, `affine` and `spacing` (per file axis) of
    its image files."""
    orientation = io_orientation(affine)
    channels = ras_channels(images, affine)
    box = nonzero_box(channels)
    foreground = apply_orientation(label.reshape(label.shape[:3]), orientation)[box] > 0
    values = [channel[box][foreground] for channel in channels]  # C order of the RAS arrays
    ras = [0.0, 0.0, 0.0]
    for axis, size in enumerate(spacing[:3]):
        ras[int(orientation[axis, 0])] = float(size)
    return CaseFingerprint(
        case=case, spacing=(ras[0], ras[1], ras[2]),
        shape=three(channels[0].shape), cropped_shape=three([s.stop - s.start for s in box]),
        class_voxels=dict(class_voxels), foreground=[foreground_stats(v) for v in values],
        samples=np.stack([strided(v).astype(np.float32) for v in values]))


def three(sizes: Sequence[int]) -> tuple[int, int, int]:
    """The first three of `sizes` as a tuple of ints."""
    return int(sizes[0]), int(sizes[1]), int(sizes[2])


def pooled_intensity(samples: np.ndarray) -> dict[str, float]:
    """nnU-Net's intensity properties of one channel's pooled samples (zeros when there are none), and their count."""
    if not samples.size:
        return {**{key: 0.0 for key in INTENSITY_KEYS}, "count": 0}
    return {"mean": float(np.mean(samples)), "std": float(np.std(samples)), "median": float(np.median(samples)),
            "min": float(np.min(samples)), "max": float(np.max(samples)),
            "percentile_00_5": float(np.percentile(samples, 0.5)),
            "percentile_99_5": float(np.percentile(samples, 99.5)), "count": int(samples.size)}


@dataclass
class DatasetFingerprint:
    """The fingerprint of a dataset: its good cases' fingerprints and the statistics pooled over them."""

    channel_names: list[str]
    modality: list[str]  # per channel: "CT" or another
    cases: list[CaseFingerprint]
    median_relative_size_after_cropping: float
    intensity: list[dict[str, float]]  # per channel: mean, std, median, min, max, percentile_00_5/_99_5, count

    def spacings(self) -> np.ndarray:
        """(cases, 3) spacings in mm, RAS order."""
        return np.array([case.spacing for case in self.cases], dtype=float).reshape(-1, 3)

    def shapes(self) -> np.ndarray:
        """(cases, 3) shapes in voxels, RAS order."""
        return np.array([case.shape for case in self.cases], dtype=int).reshape(-1, 3)

    def cropped_shapes(self) -> np.ndarray:
        """(cases, 3) shapes after cropping to the nonzero region, RAS order."""
        return np.array([case.cropped_shape for case in self.cases], dtype=int).reshape(-1, 3)

    def class_voxels(self) -> dict[int, int]:
        """Label value -> voxels over every case."""
        total: dict[int, int] = {}
        for case in self.cases:
            for value, count in case.class_voxels.items():
                total[value] = total.get(value, 0) + count
        return dict(sorted(total.items()))

    def as_json(self) -> dict[str, Any]:
        """A readable JSON-able form (written beside the planned config); per-axis lists in RAS order."""
        return {
            "channel_names": list(self.channel_names), "modality": list(self.modality),
            "cases": [case.case for case in self.cases],
            "median_spacing": np.median(self.spacings(), axis=0).tolist() if self.cases else [],
            "spacings": self.spacings().tolist(), "shapes": self.shapes().tolist(),
            "shapes_after_crop": self.cropped_shapes().tolist(),
            "median_relative_size_after_cropping": self.median_relative_size_after_cropping,
            "foreground_intensity_properties_per_channel": {
                name: stats for name, stats in zip(self.channel_names, self.intensity)},
            "class_voxels": {str(k): v for k, v in self.class_voxels().items()},
            "foreground_samples_per_case": FOREGROUND_SAMPLES,
        }


def dataset_fingerprint(report: Any, channel_names: Sequence[str], modality: Sequence[str]) -> DatasetFingerprint:
    """The fingerprint of the good cases of a checked dataset, samples pooled per channel.

    `report` is the `checks.CheckReport` of the dataset (its `fingerprints`); typed loosely because `checks`
    imports this module, and no import may go back.
    """
    cases = list(report.fingerprints)
    if not cases:
        raise SegError("no case of the dataset passed the up-front check with a label, so there is nothing to "
                       "fingerprint: fix the problems `seg check-data` lists (or point --data.root at the data)")
    if len(channel_names) != len(modality):
        raise ValueError(f"{len(channel_names)} channel names but {len(modality)} modalities")
    per_channel: list[list[np.ndarray]] = [[] for _ in channel_names]
    for case in cases:
        samples = case.foreground_samples()
        if samples.shape[0] != len(channel_names):
            raise ValueError(f"{case.case} has {samples.shape[0]} channels, not {len(channel_names)}")
        for c in range(samples.shape[0]):
            per_channel[c].append(samples[c])
    return DatasetFingerprint(
        channel_names=list(channel_names), modality=list(modality), cases=cases,
        median_relative_size_after_cropping=float(np.median([c.relative_size_after_cropping() for c in cases])),
        intensity=[pooled_intensity(np.concatenate(parts)) for parts in per_channel])


def samples_path(folder: Path, digest: str) -> Path:
    """Where the sidecar of a case's foreground samples lives in the check cache folder."""
    return folder / "fingerprint" / f"{digest}.npy"
