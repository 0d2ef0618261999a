"""`seg estimate --config X [overrides] [--json]`: the whole `seg fit` run's time (once + per epoch), measured here."""

from __future__ import annotations

import json
import math
import subprocess
import time
from typing import Optional, Union

from ...core.handoff import seg_command
from ...measure.estimate import Estimate

USAGE = """usage: seg estimate --config CONFIG [--trainer.max_epochs N ...] [--json]

Builds the configured model and data as `seg fit` does, runs a few untimed warm-up and then timed training steps,
a short validation (one warm-up case, then timed ones) and one checkpoint write on this machine, then prints what
the run pays once (start-up, data, trainer, warm-ups), seconds per epoch and the projected time of the whole run
(--json: all figures). A step and a validation case are timed from the end of the one before: the wait for the
data and its move to the device count."""
COMMAND_SECONDS = "command_seconds"  # (--json) this command's own time, from its start to its figures


def main(argv: list[str]) -> int:
    """Measure (`measure.estimate.measure`) and print the projected training time."""
    entered = time.perf_counter()
    as_json = "--json" in argv
    argv = [arg for arg in argv if arg != "--json"]
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    from ...measure.estimate import measure
    from ..lightning_cli import build_cli

    cli = build_cli(argv)
    startup = time.perf_counter() - entered  # the imports, the config and the model, as `seg fit` pays them
    result = measure(cli.model, cli.datamodule, dict(cli.config_init.get("trainer") or {}), startup_seconds=startup)
    figures = {**result.as_dict(), COMMAND_SECONDS: time.perf_counter() - entered}
    print(json.dumps(figures) if as_json else result.text(), flush=True)
    return 0 if math.isfinite(result.seconds_per_epoch) else 1


def estimate_in_child(fit_args: list[str]) -> Union[Estimate, str]:
    """The estimate of `seg fit <fit_args>`, measured by `seg estimate` in a child process (so that the caller holds
    no accelerator memory while runs train), the child's start and exit included; else why it failed."""
    started = time.perf_counter()
    measured = subprocess.run([*seg_command(), "estimate", *fit_args, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if measured.returncode == 0 and (estimate := estimate_of_output(measured.stdout, wall)) is not None:
        return estimate
    lines = [line for line in measured.stderr.splitlines() if line.strip()]
    reason = next((line for line in lines if line.startswith("seg: error:")), lines[-1] if lines else "")
    return reason.removeprefix("seg: error: ") or f"exit {measured.returncode}"


def estimate_of_output(stdout: str, wall_seconds: float) -> Optional[Estimate]:
    """The estimate in `seg estimate --json`'s output, with `outside_seconds` the part of the process's
    `wall_seconds` outside the command (the interpreter's start and exit, which a `seg fit` process pays too)."""
    figures = [line for line in stdout.splitlines() if line.startswith("{")]
    if not figures:
        return None
    values = json.loads(figures[-1])
    estimate = Estimate.from_dict(values)
    estimate.outside_seconds = max(0.0, wall_seconds - float(values.get(COMMAND_SECONDS, wall_seconds)))
    return estimate
