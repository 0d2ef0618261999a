"""The one exception type that `seg` reports to the user without a traceback."""

from __future__ import annotations

from typing import Optional


class SegError(Exception):
    """A user-facing error: bad input, a missing file, an unknown option.

    The message must name the file or option and say what to do; `seg` prints
    it on one line and exits with status `exit_code`.
    """

    exit_code = 2


def user_error(exc: Optional[BaseException]) -> Optional[SegError]:
    """The SegError behind `exc`, if any (jsonargparse wraps errors raised while instantiating classes)."""
    while exc is not None:
        if isinstance(exc, SegError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
