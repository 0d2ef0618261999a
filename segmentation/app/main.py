"""The `seg` console script: dispatches to a subcommand module, or to LightningCLI for fit/validate/test/predict.

Only what a subcommand needs is imported: `seg --help`, `seg synth` and `seg report` load
neither Lightning nor MONAI (see `COMMANDS`).
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from typing import Optional

from ..core.constants import PREEMPTED_EXIT
from ..core.errors import user_error
from ..core.log import configure_console
from ..core.storage import write_refusal_in

# name -> (module with `main(argv) -> int`, one line for `seg --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("segmentation.app.commands.synth", "synthetic cases in a dataset's real layout (--help: the kinds)"),
    "check-data": ("segmentation.app.commands.check_data", "check every case of a dataset up front, with a summary"),
    "report": ("segmentation.app.commands.report", "Dice and LR curves (PNG) and a table comparing runs"),
    "estimate": ("segmentation.app.commands.estimate", "seconds per epoch and the whole run's time, measured here"),
    "bench": (
        "segmentation.app.commands.bench", "data pipeline, network ceiling, seg fit and a plain loop, side by side"
    ),
    "batch": ("segmentation.app.commands.batch", "several runs: plan, runs (serial, --parallel, SLURM array), summary"),
    "batch-task": ("segmentation.app.commands.batch_task", "one task of a batch's SLURM array (array.sbatch runs it)"),
    "plan": ("segmentation.app.commands.plan", "configure a run from the data and the machine (nnU-Net's rules)"),
    "lr-find": ("segmentation.app.commands.lr_find", "LR range test: plot + suggestion, nothing left behind"),
    "export": ("segmentation.app.commands.export", "network + preprocessing contract + standalone predict.py"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def overview() -> str:
    """What `seg --help` prints."""
    lines = [
        "seg: train 3D medical segmentation networks (Lightning + MONAI).",
        "",
        "  seg fit --config configs/demo.yaml      train (LightningCLI: --trainer.*, --model.*, --data.*)",
        "  seg fit --ckpt_path RUN_OR_CKPT [--trainer.max_epochs N]   resume or extend a run",
        "  seg validate|test|predict --ckpt_path CKPT [--config ...]",
        *(f"  seg {name:<36}{summary}" for name, (_, summary) in COMMANDS.items()),
        "",
        "`seg SUBCOMMAND --help` describes each one; `seg fit --help` lists every LightningCLI option.",
    ]
    return "\n".join(lines)


def dispatch(argv: list[str], own_process: bool = False) -> int:
    """Run the subcommand named by `argv[0]` with the rest of `argv` (`own_process`: this process is the `seg`
    command itself, which ends when the subcommand does)."""
    if argv and argv[0] in COMMANDS:
        return import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        return 0
    if argv[0] not in LIGHTNING_COMMANDS and not argv[0].startswith("-"):
        print(f"seg: error: unknown subcommand {argv[0]!r}; one of "
              f"{', '.join([*LIGHTNING_COMMANDS, *COMMANDS])} (seg --help)", file=sys.stderr)
        return 2
    from .lightning_cli import exit_at_once, run_lightning_cli

    try:
        return run_lightning_cli(argv, own_process)
    except SystemExit as stop:
        # a fit stopped by a signal (training.preemption): the `seg` process ends here, at once, with its status
        # (Python's finalisation would put back the default handlers: a Ctrl-C then would end it with 130)
        if own_process and stop.code == PREEMPTED_EXIT:
            exit_at_once(PREEMPTED_EXIT)
        raise


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the `seg` console script: a SegError is one line on stderr and exit status 2 (3 when the
    disk refused a write: full, over quota or read-only)."""
    own_process = argv is None  # the `seg` console script or `python -m segmentation`, not a call from a program
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_console()
    try:
        return dispatch(argv, own_process)
    except argparse.ArgumentError as exc:  # LightningCLI's parser (app.argument_errors)
        from .argument_errors import one_line

        print(f"seg: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        err = user_error(exc) or write_refusal_in(exc)
        if err is None:
            raise
        print(f"seg: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)


if __name__ == "__main__":
    sys.exit(main())
