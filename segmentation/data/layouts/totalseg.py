"""The TotalSegmentator dataset's folder layout (v1 or v2), as downloaded from Zenodo; torch-free.

    <root>/meta.csv                           semicolon-separated; columns image_id and split (train/val/test)
    <root>/s0000/ct.nii.gz
    <root>/s0000/segmentations/<class>.nii.gz  one binary mask per class: 117 files (v2) or 104 (v1)

The version is detected from the mask file names; `classes` (a list, a class name or a group
of `totalseg_classes.GROUPS`) is resolved against that version's class names.
"""

from __future__ import annotations

import csv
import difflib
from pathlib import Path
from typing import Sequence, Union

from ...core.errors import SegError
from .common import missing_root, synth_hint
from .totalseg_classes import CLASSES, CLASSES_V1, CLASSES_V2, GROUPS, group_classes

__all__ = [
    "CLASSES_V1", "CLASSES_V2", "GROUPS", "IMAGE_NAME", "MASK_FOLDER", "META_NAME",
    "detect_version", "find_case_ids", "read_official_split", "resolve_classes",
]

IMAGE_NAME = "ct.nii.gz"
MASK_FOLDER = "segmentations"
META_NAME = "meta.csv"


def find_case_ids(root: Path) -> list[str]:
    """The ids (folder names) of the cases under `root`, sorted; a SegError when there are none."""
    hint = synth_hint(root, "totalseg")
    if not root.is_dir():
        raise missing_root(root, f"the TotalSegmentator folder (s0000/{IMAGE_NAME}, s0000/{MASK_FOLDER}/, {META_NAME})",
                           "totalseg")
    ids = sorted(p.name for p in root.iterdir() if (p / IMAGE_NAME).is_file())
    if not ids:
        raise SegError(f"data root {root} has no TotalSegmentator cases (<case>/{IMAGE_NAME}); {hint}")
    listed = read_official_split(root / META_NAME)
    if missing := sorted(set(listed) - set(ids)):
        raise SegError(f"{root / META_NAME} lists {len(missing)} case(s) that are not case folders with "
                       f"{IMAGE_NAME} in {root} (e.g. {', '.join(missing[:3])}); restore them or remove their rows: "
                       f"the official split would silently lose them")
    return ids


def detect_version(mask_folder: Path) -> str:
    """`v1` or `v2`, from the mask file names in one case's `segmentations/` folder."""
    names = {p.name[: -len(".nii.gz")] for p in mask_folder.glob("*.nii.gz")}
    only_v2, only_v1 = set(CLASSES_V2) - set(CLASSES_V1), set(CLASSES_V1) - set(CLASSES_V2)
    if names & only_v2 and not names & only_v1:
        return "v2"
    if names & only_v1 and not names & only_v2:
        return "v1"
    raise SegError(
        f"{mask_folder}: cannot tell the TotalSegmentator version from its {len(names)} mask files; "
        f"expected the 117 v2 names (e.g. heart.nii.gz) or the 104 v1 names (e.g. heart_myocardium.nii.gz)"
    )


def resolve_classes(classes: Union[str, Sequence[str]], version: str) -> list[str]:
    """The class names that `classes` (a group name, one class name or a list of them) means for `version`."""
    available = CLASSES[version]
    if isinstance(classes, str):
        if classes == "all" or classes in GROUPS:
            return group_classes(classes, version)
        if classes not in available:
            choices = ["all", *GROUPS, *available]
            raise SegError(
                f"--data.classes {classes!r} is neither a group ({', '.join(['all', *GROUPS])}) nor a "
                f"TotalSegmentator {version} class{close_matches_hint(classes, choices)}"
            )
        classes = [classes]
    chosen = list(classes)
    if not chosen:
        raise SegError("--data.classes is empty: give a group name (e.g. organs) or a list of class names")
    for name in chosen:
        if name not in available:
            other = "v1" if version == "v2" else "v2"
            note = f" (it is a {other} class)" if name in CLASSES[other] else ""
            raise SegError(
                f"--data.classes: {name!r} is not a TotalSegmentator {version} class{note}"
                f"{close_matches_hint(name, available)}"
            )
    duplicates = sorted({name for name in chosen if chosen.count(name) > 1})
    if duplicates:
        raise SegError(f"--data.classes names {', '.join(duplicates)} more than once")
    return chosen


def close_matches_hint(name: str, choices: Sequence[str]) -> str:
    """`; did you mean: a, b?` for the names in `choices` close to `name`, or an empty string."""
    matches = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
    return f"; did you mean: {', '.join(matches)}?" if matches else ""


def read_official_split(path: Path) -> dict[str, str]:
    """`image_id -> split` (train/val/test) from TotalSegmentator's `meta.csv`; empty when there is no file."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        if not {"image_id", "split"} <= set(reader.fieldnames or []):
            raise SegError(f"{path} has no image_id and split columns (semicolon-separated, as the download has)")
        return {row["image_id"].strip(): row["split"].strip().lower() for row in reader}
