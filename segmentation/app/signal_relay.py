"""A parent process's signals passed on to the children it runs (`seg batch` -> its `seg fit` runs)."""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import Callable, Optional

RELAYED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class SignalRelay:
    """While runs train: SIGTERM, SIGUSR1 and SIGINT go to every one of them (each checkpoints and exits 75); the
    batch then starts no further run. SIGUSR1 (SLURM's warning before the time limit) reaches a run still starting
    only once it is `ready` (before its handlers are installed SIGUSR1 would kill it; SIGTERM and SIGINT stop a
    starting run at once, as they should). `translate` may pass a signal on as another (a SLURM
    task past its `--max-requeues` turns SIGUSR1, which requeues, into SIGTERM, which does not)."""

    def __init__(self, translate: Optional[Callable[[int], int]] = None) -> None:
        self.processes: dict[subprocess.Popen, bool] = {}  # -> ready
        self.signalled: set[subprocess.Popen] = set()
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
        """A run that has started: relay to it (SIGUSR1 once it is `ready`); at once where a signal came before."""
        with self.lock:
            self.processes[process] = False
        if self.received is not None and self.received != signal.SIGUSR1:
            self.send(process, self.received)

    def ready(self, process: subprocess.Popen) -> None:
        """`process` handles signals now (its run record is written): relay to it, at once where one came before."""
        with self.lock:
            self.processes[process] = True
        if self.received is not None and process not in self.signalled:
            self.send(process, self.received)

    def remove(self, process: subprocess.Popen) -> None:
        """`process` has ended: relay nothing more to it."""
        with self.lock:
            self.processes.pop(process, None)
            self.signalled.discard(process)

    def relay(self, signum: int, frame) -> None:
        """The signal handler: remember the signal and pass it to every ready `seg fit`."""
        self.received = self.received or signum
        for process, ready in list(self.processes.items()):
            if ready or signum != signal.SIGUSR1:
                self.send(process, signum)

    def send(self, process: subprocess.Popen, signum: int) -> None:
        """Pass `signum` (translated) on to `process` while it runs."""
        if process.poll() is None:
            self.signalled.add(process)
            process.send_signal(self.translate(signum))
