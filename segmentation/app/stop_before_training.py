"""A signal before training starts (`seg fit`'s data check and store build): stop at once, with status 75.

Nothing is trained yet, so there is nothing to save; what the store build has written is whole (each case is
committed atomically) and kept, and the same command again goes on from there. From the Trainer's set-up on,
`training.preemption` handles the signals.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from ..core.constants import PREEMPTED_EXIT
from ..training.preemption import Preempted

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


@contextmanager
def stopping_on_signals(doing: str) -> Iterator[None]:
    """While the block runs, SIGTERM, SIGUSR1 or SIGINT says so in one line and raises `Preempted` (exit 75)."""
    if threading.current_thread() is not threading.main_thread():  # (only the main thread may set handlers)
        yield
        return

    def stop(signum: int, frame) -> None:
        print(f"seg: stopped by {signal.Signals(signum).name} while {doing}, before training: nothing trained to "
              f"save; what is built is kept, and the same command again goes on from there (exit status "
              f"{PREEMPTED_EXIT})", file=sys.stderr, flush=True)
        raise Preempted()

    previous = {sig: signal.signal(sig, stop) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
