"""The `seg` logger: the one output channel of library code (the app layer decides where it goes).

Library modules write `log.info(...)` (a user-facing line), `log.warning(...)`; they never print. Under
DDP only global rank 0 speaks, unless a record says `extra=ALL_RANKS`. `configure_console` (called by
the app layer) sends INFO to stdout and warnings and errors to stderr, looked up at each record so that
redirected streams (tests, `seg batch`) receive them.
"""

from __future__ import annotations

import logging
import os
import sys

from typing_extensions import override

log = logging.getLogger("seg")
ALL_RANKS = {"all_ranks": True}
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK")  # what the launchers set before Lightning is imported


def global_rank() -> int:
    """This process's global rank: Lightning's own (`rank_zero_only.rank`, which its strategies set), or before
    Lightning is loaded the launchers' variables (0 for a single process)."""
    # (lightning-utilities comes with lightning; torch-free, imported on the first record)
    from lightning_utilities.core.rank_zero import rank_zero_only

    rank = getattr(rank_zero_only, "rank", None)
    if rank is not None:
        return int(rank)
    return next((int(os.environ[name]) for name in _RANK_VARIABLES if os.environ.get(name, "").isdigit()), 0)


class RankZeroFilter(logging.Filter):
    """Lets a record through on global rank 0 only (or on every rank with `extra=ALL_RANKS`)."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return global_rank() == 0 or bool(getattr(record, "all_ranks", False))


class ConsoleHandler(logging.StreamHandler):
    """Writes INFO records to the current `sys.stdout`, warnings and errors to the current `sys.stderr` (looked up
    at each record: redirected streams receive them)."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RankZeroFilter())

    @override
    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        # (assigned, not setStream: that flushes the previous stream, which a test may have closed)
        self.stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        super().emit(record)


def configure_console() -> None:
    """Send the `seg` logger's records to the console as plain lines (once per process)."""
    if not any(isinstance(handler, ConsoleHandler) for handler in log.handlers):
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = True  # (pytest's caplog listens at the root)
