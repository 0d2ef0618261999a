"""Files a helper command writes and may later overwrite: only its own, known by their first line."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import SegError


def refuse_foreign_file(path: Path, header: str, option: str, writer: str, example: str) -> None:
    """SegError when `path` is a folder, or exists and does not start with `header` (the file `writer` writes): a
    hand-written config is never replaced. `example` is a file name to suggest inside a folder."""
    if path.is_dir():
        raise SegError(f"{option} {path} is a folder; give the path of the file to write (e.g. {path / example})")
    if path.exists() and not path.read_text(errors="replace").startswith(header):
        raise SegError(f"{option} {path} exists and was not written by {writer}; give another path (nothing was "
                       f"written)")
