"""Synthetic BraTS data for the GPU check, written in parallel: several `seg synth` parts, renumbered into one folder.

Every `seg synth brats` process numbers its cases from BraTS2021_00000 (folder and file names carry the id), so
part k is written into OUT/.part{k} and its cases are renamed to follow the parts before it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PREFIX = "BraTS2021_"


def split_cases(cases: int, processes: int) -> list[int]:
    """`cases` split as evenly as possible over at most `processes` parts (none empty)."""
    parts = max(1, min(cases, processes))
    return [cases // parts + (1 if k < cases % parts else 0) for k in range(parts)]


def renames(parts: list[list[str]]) -> list[tuple[int, str, str]]:
    """(part, old case id, new case id) for every case of every part, numbered on across the parts."""
    plan, index = [], 0
    for part, cases in enumerate(parts):
        for case in sorted(cases):
            plan.append((part, case, f"{PREFIX}{index:05d}"))
            index += 1
    return plan


def merge_parts(data: Path, count: int) -> None:
    """Move the cases of data/.part0 .. .part{count-1} into `data`, renumbered; remove the part folders."""
    folders = [data / f".part{k}" for k in range(count)]
    parts = [[case.name for case in folder.iterdir() if case.name.startswith(PREFIX)] for folder in folders]
    for part, old, new in renames(parts):
        source, target = folders[part] / old, data / new
        for file in source.iterdir():
            file.rename(source / file.name.replace(old, new))
        source.rename(target)
    for folder in folders:
        shutil.rmtree(folder)
