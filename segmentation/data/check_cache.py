"""The up-front check's memory across runs: facts per file, fingerprints per case, in the dataset's cache folder.

`check_cache.json` maps a file's key (path, size, modification time, role) to its `FileFacts`, and a case's
key (a hash of the keys of all its files) to its `CaseFingerprint`; the case's foreground samples lie in a
sidecar `fingerprint/<hash>.npy`. A changed file changes its key and its case's, so it is read again. Entries
of files that changed are not pruned (the file stays small; so does each sidecar).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from ..core.fingerprint import file_stamp
from ..core.log import log
from ..core.storage import write_atomically
from .fingerprint import CaseFingerprint, samples_path

CACHE_NAME = "check_cache.json"
FACTS_FORMAT = 3  # part of every cache key: facts remembered by an older check (other rules) are read again


@dataclass
class FileFacts:
    """What the check learned from reading one NIfTI file (or why it could not)."""

    shape: tuple[int, ...] = ()
    affine: list[list[float]] = field(default_factory=list)
    spacing: tuple[float, ...] = ()
    finite: bool = True
    values: list[float] = field(default_factory=list)  # distinct values, for label files only
    counts: list[int] = field(default_factory=list)  # voxels of each of `values`
    error: str = ""


class FactCache:
    """Per-file facts and per-case fingerprints remembered across runs (nothing is remembered without a folder)."""

    def __init__(self, folder: Optional[Path]):
        self.folder = folder
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

    def cached(self, path: Path, is_label: bool) -> Optional[FileFacts]:
        """The remembered facts of `path` as it is now, or None."""
        key = self.key(path, is_label)
        entry = self.entries.get(key) if key else None
        if entry is None:
            return None
        return FileFacts(**{**entry, "shape": tuple(entry["shape"]), "spacing": tuple(entry["spacing"])})

    def remember(self, path: Path, is_label: bool, facts: FileFacts) -> None:
        """Remember the facts of a good read of `path` (a file that could not be read is read again next time)."""
        key = self.key(path, is_label)
        if key and not facts.error:
            self.entries[key] = asdict(facts)

    def case_digest(self, case: str, files: Iterable[tuple[Path, bool]]) -> Optional[str]:
        """The hash naming a case's fingerprint: of its name and its files' keys (None if one cannot be stat'ed)."""
        keys = [self.key(path, is_label) for path, is_label in files]
        if None in keys:
            return None
        return hashlib.sha1("\n".join([f"{FACTS_FORMAT}|case|{case}", *map(str, keys)]).encode()).hexdigest()[:20]

    def fingerprint(self, digest: Optional[str]) -> Optional[CaseFingerprint]:
        """The remembered fingerprint of the case `digest` names, or None (also when its sidecar is gone)."""
        entry = self.entries.get(f"{FACTS_FORMAT}|case|{digest}") if digest and self.folder else None
        if entry is None or self.folder is None:
            return None
        sidecar = samples_path(self.folder, digest or "")
        return CaseFingerprint.from_entry(entry, str(sidecar)) if sidecar.is_file() else None

    def keep_fingerprint(self, digest: Optional[str], fingerprint: CaseFingerprint) -> None:
        """Remember `fingerprint`, its samples moved to their sidecar (kept in memory when it cannot be written)."""
        if not digest or self.folder is None or fingerprint.samples is None:
            return
        sidecar, samples = samples_path(self.folder, digest), fingerprint.samples

        def write(partial: Path) -> None:
            with partial.open("wb") as file:  # (np.save would append .npy to the temporary's name)
                np.save(file, samples)
        created = not sidecar.parent.exists()
        try:
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(sidecar, write)
        except OSError:  # a full or read-only disk: the samples stay in memory, and no empty folder is left
            if created:
                with contextlib.suppress(OSError):
                    sidecar.parent.rmdir()
            return
        self.entries[f"{FACTS_FORMAT}|case|{digest}"] = fingerprint.to_entry()
        fingerprint.samples_file, fingerprint.samples = str(sidecar), None

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
