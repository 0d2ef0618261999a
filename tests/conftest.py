"""Shared fixtures: a tiny synthetic demo task, and helpers to run `seg` and read its TensorBoard events."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segmentation.data.synthetic import write_demo_task

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
TINY_CONFIG = REPO / "tests" / "tiny.yaml"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Six 32^3 synthetic cases in the MSD layout (4 train, 2 validation)."""
    return write_demo_task(tmp_path_factory.mktemp("demo"), cases=6, shape=(32, 32, 32))


def seg_executable() -> str:
    """The installed `seg` console script (beside this Python, or on PATH)."""
    beside = Path(sys.executable).with_name("seg")
    return str(beside) if beside.exists() else shutil.which("seg") or "seg"


def run_seg(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `seg` command as a subprocess; returns the completed process (text output)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [seg_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def tiny_fit_args(root: Path, *overrides: str) -> list[str]:
    """`fit` arguments for a tiny run on `root`: demo config + the tests' tiny fragment + overrides."""
    return [
        "fit",
        "--config", str(DEMO_CONFIG),
        "--config", str(TINY_CONFIG),
        "--data.init_args.root", str(root),
        *overrides,
    ]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every event of `tag` in the run directory's TensorBoard files, in order."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(event.step, event.value) for event in events.Scalars(tag)]


def only_run_dir(logs: Path) -> Path:
    """The single `<name>/version_N` directory under `logs`."""
    runs = sorted(p for p in logs.glob("*/version_*") if p.is_dir())
    assert len(runs) == 1, f"expected one run directory under {logs}, found {runs}"
    return runs[0]
