"""The one content fingerprint of seg's caches: a short hash of settings, and the stamp of a source file.

A cache folder is named by `settings_key` of every setting that shapes its content (another setting is
another folder, never stale content); an entry inside it remembers `file_stamp` of each source file it was
made from, and is rebuilt when a stamp differs.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Mapping


def settings_key(settings: Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of `settings` (order-independent; values as JSON, others by `str`)."""
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def file_stamp(path: str | os.PathLike) -> list[int]:
    """[size, mtime_ns] of a file: a change to its content (or a copy over it) changes its stamp."""
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def file_stamps(paths: Iterable[str | os.PathLike]) -> dict[str, list[int]]:
    """Path -> `file_stamp` of each file."""
    return {str(path): file_stamp(path) for path in paths}
