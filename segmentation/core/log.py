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
from typing import TextIO

from typing_extensions import override

log = logging.getLogger("seg")
ALL_RANKS = {"all_ranks": True}
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK")  # what the launchers set before any process group exists
_rank: list[int] = []


def set_rank(rank: int) -> None:
    """This process's global rank, once the trainer knows it (before, the launchers' variables are read)."""
    _rank[:] = [int(rank)]


def global_rank() -> int:
    """This process's global rank as far as it is known (0 for a single process)."""
    if _rank:
        return _rank[0]
    for name in _RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class RankZeroFilter(logging.Filter):
    """Lets a record through on global rank 0 only (or on every rank with `extra=ALL_RANKS`)."""

    @override
    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return global_rank() == 0 or bool(getattr(record, "all_ranks", False))


class ConsoleHandler(logging.StreamHandler):
    """Writes INFO records to the current `sys.stdout`, warnings and errors to the current `sys.stderr`."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RankZeroFilter())

    @property  # type: ignore[explicit-override]  # mypy misses @override on a property with a setter (#15900)
    @override
    def stream(self) -> TextIO:
        """The stream at the moment of writing, not at configuration."""
        return sys.stderr if self._level_now >= logging.WARNING else sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass

    @override
    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        self._level_now = record.levelno
        super().emit(record)
        self.flush()

    _level_now = logging.INFO


def configure_console() -> None:
    """Send the `seg` logger's records to the console as plain lines (once per process)."""
    if not any(isinstance(handler, ConsoleHandler) for handler in log.handlers):
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = True  # (pytest's caplog listens at the root)
