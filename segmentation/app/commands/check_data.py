"""`seg check-data --config X [--data.*]`: the up-front dataset check alone, with a summary."""

from __future__ import annotations

import time

USAGE = """usage: seg check-data --config CONFIG [--data.root DIR ...]

Reads every case of the configured dataset and lists cases, shapes, spacings, label values
every problem, and whether the patch size fits the volumes (exit 1 if anything is wrong)."""


def main(argv: list[str]) -> int:
    """Build the configured datamodule, prepare its data, check every case and print the summary."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    from ...data.suitability import foreground_problem
    from ..lightning_cli import build_cli

    datamodule = build_cli(argv).datamodule
    datamodule.prepare_sources()  # e.g. TotalSegmentator merges its per-class masks here (no cache is built)
    cases = datamodule.list_cases()
    started = time.perf_counter()
    report = datamodule.check_report(cases)
    print(report.summary())
    patch = datamodule.patch_problem(report)
    print(f"patch: {patch or 'fits'}")
    foreground = foreground_problem(report, datamodule.root)
    print(f"foreground: {foreground or 'present'}")
    print(f"checked {len(cases)} cases in {time.perf_counter() - started:.1f} s ({datamodule.root})")
    return 1 if report.problems or patch or foreground else 0
