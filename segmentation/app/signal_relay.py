"""A parent process's signals passed on to the child it runs (`seg batch` -> its `seg fit`)."""

from __future__ import annotations

import signal
import subprocess
from typing import Optional


class SignalRelay:
    """While a run trains: SIGTERM, SIGUSR1 and SIGINT go to it (it checkpoints and exits 75); the batch then stops."""

    def __init__(self) -> None:
        self.process: Optional[subprocess.Popen] = None
        self.received: Optional[int] = None

    def __enter__(self) -> SignalRelay:
        self.previous = {sig: signal.signal(sig, self.relay) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def relay(self, signum: int, frame) -> None:
        """The signal handler: remember the signal and pass it to the running `seg fit`."""
        self.received = self.received or signum
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
