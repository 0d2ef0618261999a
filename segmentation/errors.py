"""The one exception type that `seg` reports to the user without a traceback."""


class SegError(Exception):
    """A user-facing error: bad input, a missing file, an unknown option.

    The message must name the file or option and say what to do; `seg` prints
    it on one line and exits with status 2.
    """
