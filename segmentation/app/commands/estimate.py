"""`seg estimate --config X [overrides] [--json]`: seconds per epoch and the whole run's time, measured here."""

from __future__ import annotations

import json
import math

USAGE = """usage: seg estimate --config CONFIG [--trainer.max_epochs N ...] [--json]

Runs a few untimed warm-up and then timed training steps and a short validation on this machine,
then prints seconds per epoch and the projected time of the whole run (--json: all figures)."""


def main(argv: list[str]) -> int:
    """Measure (`measure.estimate.measure`) and print the projected training time."""
    as_json = "--json" in argv
    argv = [arg for arg in argv if arg != "--json"]
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    from ...measure.estimate import measure
    from ..lightning_cli import build_cli

    cli = build_cli(argv)
    result = measure(cli.model, cli.datamodule, dict(cli.config_init.get("trainer") or {}))
    print(json.dumps(result.as_dict()) if as_json else result.text(), flush=True)
    return 0 if math.isfinite(result.seconds_per_epoch) else 1
