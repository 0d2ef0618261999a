"""The up-front dataset check: every case's files, read once before the first training step.

A broken case is reported by name before training starts, never as a crash in
epoch 37. The check reads each image and label file completely (a truncated
`.nii.gz` only fails when its data is read) and looks for: missing or unreadable
files, image/label shapes and affines that disagree, label values outside the
dataset's declared set, NaN or Inf voxels, images that are not 3D volumes or hold
another number of channels than the dataset declares, symbolic-link loops. All
problems are listed together.

The same single pass fingerprints every good case for `seg plan` (`fingerprint.py`):
a case's image channels and label are read together, in one thread task, and
measured from the arrays just read. Facts are cached per file (by path, size and
modification time) and fingerprints per case in the dataset's cache folder
(`check_cache.py`), so a second run reads only what changed.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.orientations import io_orientation
from typing_extensions import override

from .check_cache import FactCache, FileFacts
from .fingerprint import CaseFingerprint, measure_case
from .nifti import load_nifti

AFFINE_TOLERANCE = 1e-3  # mm; headers written by different tools round differently


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


def read_file(path: Path, is_label: bool) -> tuple[FileFacts, Optional[np.ndarray]]:
    """Read `path` completely: what it is, and its voxels (None when it cannot be read: then `error` says why)."""
    why = unopenable(path)
    if why:
        return FileFacts(error=why), None
    try:
        image = load_nifti(path)
        data = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many types for truncated or foreign files
        return FileFacts(error=f"unreadable, truncated or not NIfTI ({type(err).__name__}: {str(err)[:80]})"), None
    header_problem = affine_problem(image.affine) or ("holds complex voxels: seg reads real intensities (save the "
                                                      "magnitude)" if np.iscomplexobj(data) else "")
    if header_problem:
        return FileFacts(error=header_problem), None
    facts = FileFacts(
        shape=tuple(int(n) for n in data.shape),
        affine=np.round(image.affine, 4).tolist(),
        spacing=tuple(round(float(z), 4) for z in voxel_sizes(image.affine)),  # (as resampling sees them)
    )
    if np.issubdtype(data.dtype, np.floating):
        facts.finite = bool(np.isfinite(data).all())
    if is_label and facts.finite:
        values, counts = np.unique(data, return_counts=True)
        facts.values, facts.counts = [float(v) for v in values], [int(n) for n in counts]
    return facts, data


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
    fingerprints: list[CaseFingerprint] = field(default_factory=list)  # good labelled cases, in case order

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


def check_one(case: dict, cache: FactCache, label_values: set[int],
              channels: int) -> tuple[dict[Path, FileFacts], list[Problem], Optional[CaseFingerprint]]:
    """Check and fingerprint one case, reading only what the cache does not know: the facts of its files, its
    problems, and its fingerprint (None when it has problems or no label). At most one case's arrays in memory."""
    files = list(case_files(case))
    digest = cache.case_digest(case["case"], [(path, is_label) for _, path, is_label in files])
    known = {path: cache.cached(path, is_label) for _, path, is_label in files}
    arrays: dict[Path, np.ndarray] = {}

    def read(path: Path, is_label: bool, keep: bool) -> FileFacts:
        facts, data = read_file(path, is_label)
        cache.remember(path, is_label, facts)
        if keep and data is not None:
            arrays[path] = data
        return facts

    needed = [(path, is_label) for role, path, is_label in files if role in ("image", "label")]
    facts = {path: known[path] or read(path, is_label, (path, is_label) in needed) for _, path, is_label in files}
    problems = check_case(case, facts, label_values, channels)
    if problems or not case.get("label"):
        return facts, problems, None
    fingerprint = cache.fingerprint(digest) if not arrays else None
    if fingerprint is None:
        for path, is_label in needed:
            if path not in arrays:
                read(path, is_label, keep=True)
        label = Path(case["label"])
        images = [arrays[path] for path, is_label in needed if not is_label]
        class_voxels = {int(v): n for v, n in zip(facts[label].values, facts[label].counts)}
        first = facts[needed[0][0]]
        fingerprint = measure_case(case["case"], images, arrays[label], np.asarray(first.affine), first.spacing,
                                   class_voxels)
        cache.keep_fingerprint(digest, fingerprint)
    return facts, problems, fingerprint


def check_dataset(cases: list[dict], label_values: set[int], cache_folder: Optional[Path], channels: int,
                  workers: int = 4) -> CheckReport:
    """Check and fingerprint every case (one case per thread task; cached per file and case) and summarise."""
    cache = FactCache(cache_folder)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda case: check_one(case, cache, label_values, channels), cases))
    cache.save()
    report = CheckReport(cases=len(cases))
    for case, (facts, found, fingerprint) in zip(cases, results):
        report.problems += found
        files = list(case_files(case))
        first = facts[files[0][1]]
        if not first.error:
            report.shapes[first.shape] += 1
            report.spacings[first.spacing] += 1
        if not found:
            report.extents.append(ras_extent(first))
            report.extent_files.append(str(files[0][1]))
        if fingerprint is not None:
            report.fingerprints.append(fingerprint)
        for role, path, _ in files:
            if role == "label":
                report.label_voxels_cases.update(facts[path].values)
    return report
