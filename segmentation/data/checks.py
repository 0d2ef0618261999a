"""The up-front dataset check: every case's files, read once before the first training step.

A broken case is reported by name before training starts, never as a crash in
epoch 37. The check reads each image and label file completely (a truncated
`.nii.gz` only fails when its data is read) and looks for: missing or unreadable
files, image/label shapes and affines that disagree, label values outside the
dataset's declared set, NaN or Inf voxels, images that are not 3D volumes or hold
another number of channels than the dataset declares, symbolic-link loops. All
problems are listed together.

Results are cached per file (by path, size and modification time) in the
dataset's cache folder, so a second run checks only what changed.
"""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.orientations import io_orientation
from typing_extensions import override

from ..core.fingerprint import file_stamp
from ..core.log import log
from ..core.storage import write_atomically
from .nifti import load_nifti

CACHE_NAME = "check_cache.json"
FACTS_FORMAT = 2  # part of every cache key: facts remembered by an older check (other rules) are read again
AFFINE_TOLERANCE = 1e-3  # mm; headers written by different tools round differently


@dataclass
class FileFacts:
    """What the check learned from reading one NIfTI file (or why it could not)."""

    shape: tuple[int, ...] = ()
    affine: list[list[float]] = field(default_factory=list)
    spacing: tuple[float, ...] = ()
    finite: bool = True
    values: list[float] = field(default_factory=list)  # distinct values, for label files only
    error: str = ""


def unopenable(path: Path) -> str:
    """Why `path` cannot be opened as a file ("" when it can): missing, a dangling link, a link loop, a folder."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symbolic link loop (it points back at itself); replace it with the file"
        if path.is_symlink():
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "missing" if err.errno == errno.ENOENT else f"cannot be opened ({err.strerror})"
    return "" if path.is_file() else "is not a file"


def read_facts(path: Path, is_label: bool) -> FileFacts:
    """Read `path` completely and describe it; an unreadable file gives `error`."""
    why = unopenable(path)
    if why:
        return FileFacts(error=why)
    try:
        image = load_nifti(path)
        data = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many types for truncated or foreign files
        return FileFacts(error=f"unreadable, truncated or not NIfTI ({type(err).__name__}: {str(err)[:80]})")
    header_problem = affine_problem(image.affine) or ("holds complex voxels: seg reads real intensities (save the "
                                                      "magnitude)" if np.iscomplexobj(data) else "")
    if header_problem:
        return FileFacts(error=header_problem)
    facts = FileFacts(
        shape=tuple(int(n) for n in data.shape),
        affine=np.round(image.affine, 4).tolist(),
        spacing=tuple(round(float(z), 4) for z in voxel_sizes(image.affine)),  # (as resampling sees them)
    )
    if np.issubdtype(data.dtype, np.floating):
        facts.finite = bool(np.isfinite(data).all())
    if is_label and facts.finite:
        facts.values = [float(v) for v in np.unique(data)]
    return facts


def affine_problem(affine: np.ndarray) -> str:
    """What is wrong with a header's voxel-to-world affine ("" if nothing): not finite, or singular (a zero voxel
    size or two axes along one direction), which no resampling or reorientation can undo."""
    if not np.isfinite(affine).all():
        return "affine holds NaN or Inf: the header does not say where its voxels lie (fix the header)"
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        return "affine is singular (a zero voxel size or two axes along one direction): fix the header"
    return ""


@dataclass
class Problem:
    """One thing wrong with one file of one case."""

    case: str
    file: str
    message: str

    @override
    def __str__(self) -> str:
        return f"{self.case}: {self.file}: {self.message}"


@dataclass
class CheckReport:
    """The outcome of checking a whole dataset."""

    cases: int = 0
    problems: list[Problem] = field(default_factory=list)
    shapes: Counter = field(default_factory=Counter)
    spacings: Counter = field(default_factory=Counter)
    label_voxels_cases: Counter = field(default_factory=Counter)  # label value -> number of cases holding it
    extents: list[tuple[tuple[int, ...], tuple[float, ...]]] = field(default_factory=list)  # RAS shape, spacing
    extent_files: list[str] = field(default_factory=list)  # the first file of each case in `extents`

    def largest_extent(self, spacing: Optional[Sequence[float]] = None) -> list[int]:
        """Per RAS axis, the most voxels any good case has there (after resampling to `spacing`, if given)."""
        if spacing:
            return [max(round(shape[a] * own[a] / spacing[a]) for shape, own in self.extents) for a in range(3)]
        return [max(shape[a] for shape, _ in self.extents) for a in range(3)]

    def summary(self) -> str:
        """A few lines for the console: cases, shapes, spacings, label values, problems."""
        lines = [f"cases: {self.cases}"]
        lines.append("shapes: " + ", ".join(f"{list(s)} x{n}" for s, n in self.shapes.most_common(5)))
        lines.append("spacings (mm): " + ", ".join(f"{list(s)} x{n}" for s, n in self.spacings.most_common(5)))
        labels = sorted(self.label_voxels_cases.items())
        lines.append("label values (cases holding each): " + ", ".join(f"{v:g}: {n}" for v, n in labels))
        lines.append(f"problems: {len(self.problems)}")
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


class FactCache:
    """Per-file facts remembered across runs, keyed by path, size and modification time."""

    def __init__(self, folder: Optional[Path]):
        self.path = folder / CACHE_NAME if folder else None
        self.entries: dict[str, Any] = {}
        if self.path and self.path.is_file():
            try:
                self.entries = dict(json.loads(self.path.read_text()))
            except (OSError, ValueError, TypeError) as err:
                log.warning(f"the dataset check cache {self.path} is unreadable ({type(err).__name__}); "
                              f"every file is checked again and the cache rewritten")
                self.entries = {}

    @staticmethod
    def key(path: Path, is_label: bool) -> Optional[str]:
        """The cache key of a file (path, size, mtime, role); None when it cannot be stat'ed."""
        try:
            size, modified = file_stamp(path)
        except OSError:
            return None
        return f"{FACTS_FORMAT}|{path.resolve()}|{size}|{modified}|{int(is_label)}"

    def facts(self, path: Path, is_label: bool) -> FileFacts:
        """Cached facts of `path`, or read it (and remember good reads)."""
        key = self.key(path, is_label)
        if key and key in self.entries:
            entry = self.entries[key]
            return FileFacts(**{**entry, "shape": tuple(entry["shape"]), "spacing": tuple(entry["spacing"])})
        facts = read_facts(path, is_label)
        if key and not facts.error:
            self.entries[key] = asdict(facts)
        return facts

    def save(self) -> None:
        """Write the cache atomically; a read-only dataset folder just goes without."""
        if not self.path:
            return
        text = json.dumps(self.entries)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, lambda partial: partial.write_text(text))
        except OSError:
            pass


def case_files(case: dict) -> Iterable[tuple[str, Path, bool]]:
    """(role, path, is_label) of every file of a case: image channels, label, per-class masks."""
    images = case["image"] if isinstance(case["image"], (list, tuple)) else [case["image"]]
    for path in images:
        yield "image", Path(path), False
    if case.get("label"):
        yield "label", Path(case["label"]), True
    for name, path in (case.get("masks") or {}).items():
        yield f"mask {name}", Path(path), True


def check_case(case: dict, facts: dict[Path, FileFacts], label_values: set[int], channels: int) -> list[Problem]:
    """Every problem of one case, given the facts of its files and the dataset's number of image channels."""
    problems: list[Problem] = []
    reference: Optional[FileFacts] = None
    files = list(case_files(case))
    images = [path for role, path, _ in files if role == "image"]
    for role, path, is_label in files:
        fact = facts[path]
        say = lambda message, file=str(path): problems.append(Problem(case["case"], file, message))  # noqa: E731
        if fact.error:
            say(f"{role} {fact.error}")
            continue
        if not fact.finite:
            say(f"{role} holds NaN or Inf voxels")
        wrong_dimensions = dimension_problem(role, fact.shape, len(images), channels)
        if wrong_dimensions:
            say(wrong_dimensions)
            continue
        if reference is None:
            reference = fact
        elif fact.shape[:3] != reference.shape[:3]:
            say(f"{role} shape {list(fact.shape)} differs from the image's {list(reference.shape)}")
        elif not np.allclose(fact.affine, reference.affine, atol=AFFINE_TOLERANCE):
            say(f"{role} affine differs from the image's (not the same voxel grid)")
        allowed = {0, 1} if role.startswith("mask") else label_values
        bad = [v for v in fact.values if v != int(v) or int(v) not in allowed] if is_label else []
        if bad:
            say(f"{role} holds values {bad[:6]} outside the declared set {sorted(allowed)}")
    return problems


def dimension_problem(role: str, shape: tuple[int, ...], image_files: int, channels: int) -> str:
    """What is wrong with a file's dimensions ("" if nothing): 3D volumes, or one 4D file holding every channel."""
    if role == "image" and image_files == 1:  # one file holds every channel: (X, Y, Z) or (X, Y, Z, channels)
        if len(shape) not in (3, 4):
            return (f"image has {len(shape)} dimensions {list(shape)}: "
                    "expected a 3D volume (X, Y, Z) or (X, Y, Z, channels)")
        found = shape[3] if len(shape) == 4 else 1
        return "" if found == channels else (
            f"image holds {found} channel(s) {list(shape)}, but the dataset declares {channels}")
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        return f"{role} has shape {list(shape)}: expected a 3D volume (X, Y, Z)"
    if role == "image" and image_files != channels:
        return f"image is one of {image_files} channel files, but the dataset declares {channels} channel(s)"
    return ""


def ras_extent(fact: FileFacts) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The file's spatial shape and spacing in RAS axis order (as the pipeline's reorientation leaves it)."""
    order = io_orientation(np.asarray(fact.affine))[:, 0].astype(int)
    shape, spacing = [0, 0, 0], [0.0, 0.0, 0.0]
    for axis, target in enumerate(order):
        shape[target], spacing[target] = fact.shape[axis], fact.spacing[axis]
    return tuple(shape), tuple(spacing)


def check_dataset(cases: list[dict], label_values: set[int], cache_folder: Optional[Path], channels: int,
                  workers: int = 4) -> CheckReport:
    """Check every file of every case (in parallel threads, cached per file) and summarise."""
    cache = FactCache(cache_folder)
    unique = {path: is_label for case in cases for _, path, is_label in case_files(case)}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        facts = dict(zip(unique, pool.map(lambda item: cache.facts(*item), unique.items())))
    cache.save()
    report = CheckReport(cases=len(cases))
    for case in cases:
        found = check_case(case, facts, label_values, channels)
        report.problems += found
        files = list(case_files(case))
        first = facts[files[0][1]]
        if not first.error:
            report.shapes[first.shape] += 1
            report.spacings[first.spacing] += 1
        if not found:
            report.extents.append(ras_extent(first))
            report.extent_files.append(str(files[0][1]))
        for role, path, _ in files:
            if role == "label":
                report.label_voxels_cases.update(facts[path].values)
    return report
