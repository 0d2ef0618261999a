"""Command-line rewriting for resumes: a checkpoint's stored config goes first, so the user's arguments win."""

from __future__ import annotations

from typing import Optional

from ..training.checkpointing import load_checkpoint
from ..training.records import stored_config
from ..training.resume import resolve_checkpoint

RESUMABLE = ("fit", "validate", "test", "predict")


def ckpt_argument(argv: list[str]) -> tuple[Optional[int], Optional[str]]:
    """Position and value of `--ckpt_path` in `argv` (either `--ckpt_path X` or `--ckpt_path=X`)."""
    for index, arg in enumerate(argv):
        if arg == "--ckpt_path" and index + 1 < len(argv):
            return index, argv[index + 1]
        if arg.startswith("--ckpt_path="):
            return index, arg.split("=", 1)[1]
    return None, None


def with_stored_config(argv: list[str]) -> list[str]:
    """`argv` with the checkpoint's stored config inserted right after the subcommand.

    Only when `--ckpt_path` names a file or a run directory (not `last`, which
    needs the run's config to find the run). Later `--config` files and
    arguments override the stored values, as LightningCLI composes left to right.
    """
    if not argv or argv[0] not in RESUMABLE:
        return argv
    _, value = ckpt_argument(argv)
    if value is None or value == "last":
        return argv
    path = resolve_checkpoint(value, run_root=None)
    stored = stored_config(load_checkpoint(path)) if path else None
    if not stored:
        return argv
    return [argv[0], "--config", stored, *argv[1:]]
