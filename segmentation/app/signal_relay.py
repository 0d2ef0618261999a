"""A parent process's signals passed on to the children it runs (`seg batch` -> its `seg fit` runs)."""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import Callable, Optional

RELAYED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class SignalRelay:
    """While runs train: SIGTERM, SIGUSR1 and SIGINT go to every one of them (each checkpoints and exits 75); the
    batch then starts no further run. `translate` may pass a signal on as another (a SLURM task past its
    `--max-requeues` turns SIGUSR1, which requeues, into SIGTERM, which does not)."""

    def __init__(self, translate: Optional[Callable[[int], int]] = None) -> None:
        self.processes: set[subprocess.Popen] = set()
        self.received: Optional[int] = None
        self.translate = translate or (lambda signum: signum)
        self.lock = threading.Lock()

    def __enter__(self) -> SignalRelay:
        self.previous = {sig: signal.signal(sig, self.relay) for sig in RELAYED}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def add(self, process: subprocess.Popen) -> None:
        """Relay to `process` from now on (at once, where a signal came before it started)."""
        with self.lock:
            self.processes.add(process)
        if self.received is not None:
            process.send_signal(self.translate(self.received))

    def remove(self, process: subprocess.Popen) -> None:
        """`process` has ended: relay nothing more to it."""
        with self.lock:
            self.processes.discard(process)

    def relay(self, signum: int, frame) -> None:
        """The signal handler: remember the signal and pass it to every running `seg fit`."""
        self.received = self.received or signum
        for process in list(self.processes):
            if process.poll() is None:
                process.send_signal(self.translate(signum))
