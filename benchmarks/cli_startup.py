"""How long `seg` takes to answer, per subcommand: wall time of the real console script, median of N runs.

Run: python benchmarks/cli_startup.py [N]   (prints a Markdown table; nothing is asserted)

Each command runs in a fresh process, as a user types it. `seg fit --help` is the reference
that must import Lightning and MONAI; the others should not.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["synth", "--help"],
    ["report", "--help"],
    ["check-data", "--help"],
    ["estimate", "--help"],
    ["batch", "--help"],
    ["fit", "--help"],
]


def seg_executable() -> str:
    beside = Path(sys.executable).with_name("seg")
    return str(beside) if beside.exists() else shutil.which("seg") or "seg"


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([seg_executable(), *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    seconds(["--help"])  # warm the file cache
    print(f"| command | median of {runs} (s) | min (s) |\n| --- | --- | --- |")
    for command in COMMANDS:
        times = [seconds(command) for _ in range(runs)]
        print(f"| `seg {' '.join(command)}` | {statistics.median(times):.2f} | {min(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
