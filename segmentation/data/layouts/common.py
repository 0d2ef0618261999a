"""Messages shared by the layouts: a missing data root, and how to get a synthetic stand-in."""

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
