"""`seg check-data --config X [--data.*]`: the up-front dataset check alone, with a summary."""

from __future__ import annotations

import time

USAGE = """usage: seg check-data --config CONFIG [--data.root DIR ...]

Reads every case of the configured dataset and lists cases, shapes, spacings, label values
and every problem (exit 1 if any)."""


def main(argv: list[str]) -> int:
    """Build the configured datamodule, prepare its data, check every case and print the summary."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    from ...data.checks import check_dataset
    from ..lightning_cli import build_cli

    datamodule = build_cli(argv).datamodule
    datamodule.prepare_data()  # e.g. TotalSegmentator merges its per-class masks here
    cases = datamodule.list_cases()
    started = time.perf_counter()
    report = check_dataset(cases, datamodule.label_values(), datamodule.cache_folder())
    print(report.summary())
    print(f"checked {len(cases)} cases in {time.perf_counter() - started:.1f} s ({datamodule.root})")
    return 1 if report.problems else 0
