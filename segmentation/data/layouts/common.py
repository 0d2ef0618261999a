"""Shared by the layouts: the missing-root message, the synthetic stand-in hint, and the images an entry of
`--data.predict_images` means."""

from __future__ import annotations

from pathlib import Path

from ...core.errors import SegError


def synth_hint(root: Path, kind: str) -> str:
    """How to get a synthetic stand-in of dataset `kind` at `root`, for error messages."""
    return f"write synthetic cases there with: seg synth {kind} --out {root}"


def missing_root(root: Path, expected: str, kind: str) -> SegError:
    """The error for a `--data.root` that does not exist: what belongs there, and the synthetic stand-in."""
    return SegError(
        f"data root {root} does not exist (--data.root). Point it at {expected}, or {synth_hint(root, kind)}"
    )


def images_of(entry: str) -> list[Path]:
    """The NIfTI files an entry of `--data.predict_images` means: a file, a folder's NIfTI files, or a glob."""
    path = Path(entry).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith((".nii.gz", ".nii")) and p.is_file())
    elif any(char in entry for char in "*?["):
        found = sorted(p for p in Path(path.anchor or ".").glob(str(path.relative_to(path.anchor or ".")))
                       if p.is_file())
    else:
        raise SegError(f"--data.predict_images: {entry} is no file, folder or glob pattern")
    if not found:
        raise SegError(f"--data.predict_images: {entry} holds no NIfTI file (*.nii.gz, *.nii)")
    return found
