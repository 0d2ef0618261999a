"""Breakers: each takes a copy of a synthetic dataset's folder and breaks one thing in it."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np

Breaker = Callable[[Path], None]


def rewrite(pattern: str, transform: Callable[[np.ndarray], np.ndarray]) -> Breaker:
    """Rewrite every NIfTI file matching `pattern` as `transform` of its voxels (same affine)."""
    def breaker(data: Path) -> None:
        for path in sorted(data.glob(pattern)):
            image = nib.load(str(path))
            nib.save(nib.Nifti1Image(transform(np.asanyarray(image.dataobj)), image.affine), str(path))
    return breaker


def rewrite_image(case: str, transform: Callable[[np.ndarray], np.ndarray]) -> Breaker:
    return rewrite(f"imagesTr/{case}.nii.gz", transform)


def rewrite_label(case: str, transform: Callable[[np.ndarray], np.ndarray]) -> Breaker:
    return rewrite(f"labelsTr/{case}.nii.gz", transform)


def change_affine(relative: str, change: Callable[[np.ndarray], np.ndarray],
                  voxels: Callable[[np.ndarray], np.ndarray] = lambda d: d) -> Breaker:
    """Rewrite one NIfTI file with `change(affine)` as its affine (and `voxels(data)` as its voxels), in the sform
    only (a singular or NaN affine has no qform)."""
    def breaker(data: Path) -> None:
        path = data / relative
        image = nib.load(str(path))
        content = voxels(np.asanyarray(image.dataobj))
        header = nib.Nifti1Header()
        header.set_data_dtype(content.dtype)
        header.set_data_shape(content.shape)
        header.set_sform(change(image.affine.copy()), code=1)
        nib.save(nib.Nifti1Image(content, None, header=header), str(path))
    return breaker


def shifted(affine: np.ndarray) -> np.ndarray:
    affine[0, 3] += 5.0
    return affine


def flipped_first_axis(affine: np.ndarray) -> np.ndarray:
    """The affine of the same voxels stored with the first axis reversed (another orientation)."""
    size = 32
    affine[:3, 3] += affine[:3, 0] * (size - 1)
    affine[:3, 0] *= -1
    return affine


def header_larger_than_data(relative: str) -> Breaker:
    """A NIfTI file whose header promises 64 slices where its data holds 32 (a header that lies)."""
    def breaker(data: Path) -> None:
        path = data / relative
        image = nib.load(str(path))
        voxels = np.asarray(image.dataobj, dtype=np.float32)
        header = nib.Nifti1Header()
        header.set_data_dtype(np.float32)
        header.set_data_shape(voxels.shape[:2] + (voxels.shape[2] * 2,))
        header.set_sform(image.affine, code=1)
        header.set_qform(image.affine, code=1)
        header["vox_offset"] = 352
        path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + voxels.tobytes(order="F")))
    return breaker


def nan_in_the_middle(data: np.ndarray) -> np.ndarray:
    spoiled = data.astype(np.float32)
    spoiled[16, 16, 16] = np.nan
    return spoiled


def cut_short(relative: str) -> Breaker:
    """Keep the first half of a file's bytes (a copy cut short)."""
    def breaker(data: Path) -> None:
        path = data / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return breaker


def replace_bytes(relative: str, content: bytes) -> Breaker:
    def breaker(data: Path) -> None:
        (data / relative).write_bytes(content)
    return breaker


def remove(relative: str) -> Breaker:
    def breaker(data: Path) -> None:
        path = data / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return breaker


def into_folder(relative: str) -> Breaker:
    """Replace a file by a folder of the same name."""
    def breaker(data: Path) -> None:
        path = data / relative
        path.unlink()
        path.mkdir()
    return breaker


def into_file(relative: str) -> Breaker:
    """Replace a case folder by a file of the same name."""
    def breaker(data: Path) -> None:
        shutil.rmtree(data / relative)
        (data / relative).write_text("not a folder")
    return breaker


def link_loop(relative: str) -> Breaker:
    def breaker(data: Path) -> None:
        path = data / relative
        path.unlink()
        path.symlink_to(path.name)  # points at itself
    return breaker


def dangling_link(relative: str) -> Breaker:
    def breaker(data: Path) -> None:
        path = data / relative
        path.unlink()
        path.symlink_to(data / "gone.nii.gz")
    return breaker


def rewrite_json(change: Callable[[dict], None]) -> Breaker:
    """Rewrite the task's dataset.json through `change(meta)`."""
    def breaker(data: Path) -> None:
        meta = json.loads((data / "dataset.json").read_text())
        change(meta)
        (data / "dataset.json").write_text(json.dumps(meta))
    return breaker


def rewrite_meta_csv(change: Callable[[list[dict]], list[dict]]) -> Breaker:
    """Rewrite TotalSegmentator's meta.csv (`;`-separated) through `change(rows)`."""
    def breaker(data: Path) -> None:
        with open(data / "meta.csv", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=";"))
        rows = change(rows)
        with open(data / "meta.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["image_id"], delimiter=";")
            writer.writeheader()
            writer.writerows(rows)
    return breaker


def every_row(column: str, value: str) -> Callable[[list[dict]], list[dict]]:
    return lambda rows: [{**row, column: value} for row in rows]


def with_row(row: dict) -> Callable[[list[dict]], list[dict]]:
    return lambda rows: rows + [{**rows[0], **row}]


def first(data: Path, pattern: str) -> Path:
    """The first path (sorted) matching `pattern` under `data`."""
    return sorted(data.glob(pattern))[0]


def on_first(pattern: str, make: Callable[[str], Breaker]) -> Breaker:
    """`make(path of the first match of pattern, relative to the data folder)` applied."""
    def breaker(data: Path) -> None:
        make(str(first(data, pattern).relative_to(data)))(data)
    return breaker
