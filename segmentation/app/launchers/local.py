"""The local parallel launcher: N runs at once on this machine, each with its own GPUs or its share of the CPU.

A run that fails does not stop the others; a signal reaches every running run (each checkpoints and exits 75) and
no further run starts. Each run's output goes to its log and, each line prefixed with the run's name, to stdout.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from ...core.errors import SegError
from ..batch_plan import Run
from ..batch_run import execute
from ..batch_state import BatchState
from ..signal_relay import SignalRelay

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def visible_gpus() -> list[str]:
    """The CUDA devices this process may hand out (as `CUDA_VISIBLE_DEVICES` names them), [] without CUDA."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    named = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named[:count] if named else [str(i) for i in range(count)]


def default_parallel(gpus_per_run: int) -> int:
    """Runs at once when `--parallel` is not given: as many as the GPUs hold, else 2."""
    gpus = visible_gpus()
    return max(1, len(gpus) // gpus_per_run) if gpus else 2


def slot_environments(parallel: int, gpus_per_run: int) -> list[dict[str, str]]:
    """One environment per slot: its own GPUs (`CUDA_VISIBLE_DEVICES`), or without CUDA its share of the CPU threads
    (`OMP_NUM_THREADS`; a thread count set already is shared, not exceeded)."""
    gpus = visible_gpus()
    if gpus:
        if parallel * gpus_per_run > len(gpus):
            raise SegError(f"--parallel {parallel} x --gpus {gpus_per_run}: {parallel * gpus_per_run} GPUs wanted, "
                           f"{len(gpus)} visible; lower --parallel")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * gpus_per_run:(i + 1) * gpus_per_run])}
                for i in range(parallel)]
    cpus = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    threads = str(max(1, cpus // (parallel * gpus_per_run)))
    return [dict.fromkeys(THREAD_VARIABLES, threads) for _ in range(parallel)]


def run_in_parallel(runs: list[Run], state: BatchState, epochs: int, relay: SignalRelay,
                    environments: list[dict[str, str]]) -> None:
    """Run every run not skipped, `len(environments)` at a time, each in a free slot's environment."""
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for environment in environments:
        slots.put(environment)
    printing = threading.Lock()

    def run_in_a_slot(run: Run) -> None:
        environment = slots.get()
        try:
            if relay.received:
                return  # the batch is being stopped: no new run
            with printing:
                print(f"=== {run.name} ({run.action}) {' '.join(f'{k}={v}' for k, v in environment.items())}",
                      flush=True)
            execute(run, state, epochs, relay, echo=lambda line: echo(run.name, line), env=environment)
        finally:
            slots.put(environment)

    def echo(name: str, line: str) -> None:
        with printing:
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()

    with ThreadPoolExecutor(max_workers=len(environments)) as pool:
        futures = [pool.submit(run_in_a_slot, run) for run in runs if run.action != "skip"]
        pending = set(futures)
        while pending:  # a short wait, so that this (main) thread runs the signal handler at once
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a bug in the launcher itself is raised, not lost
