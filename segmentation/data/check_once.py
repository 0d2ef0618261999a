"""The up-front check of a datamodule's cases, run once per datamodule and once across processes.

`seg fit` checks before the run directory exists and Lightning's `setup` would check again: the same cases
are checked once. DDP ranks started together take turns on a file lock: the first reads every file, the rest
reuse its per-file cache (`data.checks`). Any problem is a SegError listing all of them, so training never
starts on a broken dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..core.errors import SegError
from ..core.locking import exclusive
from .checks import CheckReport
from .suitability import foreground_problem


class CheckOnce:
    """Runs `check_report(cases)` under the dataset's check lock unless these cases passed already.

    Args:
        check_report: reads and checks every file of the cases given (the datamodule's `check_report`).
        patch_problem: why the configured patch suits none of the checked volumes ("" if it suits).
        cache_folder: where the check's lock and per-file cache live.
        root: the dataset folder, named in the error.
    """

    def __init__(self, check_report: Callable[[list[dict]], CheckReport], patch_problem: Callable[[CheckReport], str],
                 cache_folder: Path, root: Path):
        self.check_report, self.patch_problem = check_report, patch_problem
        self.cache_folder, self.root = cache_folder, root
        self.passed: Optional[list[dict]] = None

    def __call__(self, cases: list[dict]) -> Optional[CheckReport]:
        """The report of `cases` (None when they passed already); SegError listing every problem found."""
        if cases == self.passed:
            return None
        with exclusive(self.cache_folder / "check.lock", "dataset check"):
            report = self.check_report(cases)
        refuse_problems(report, self.root)
        problem = self.patch_problem(report) or foreground_problem(report, self.root)
        if problem:
            raise SegError(problem)
        self.passed = list(cases)
        return report


def refuse_problems(report: CheckReport, root: Path, what: str = "training was not started") -> None:
    """SegError listing every problem the check found in `root` (nothing when it found none)."""
    if report.problems:
        listed = "\n".join(f"  {problem}" for problem in report.problems)
        raise SegError(f"the dataset check found {len(report.problems)} problem(s) in {root}; {what}. Fix or remove "
                       f"these cases (seg check-data re-runs the check alone):\n{listed}")
