"""Fault points: a planned kill lands on exactly the named arrival, a malformed plan is refused, none costs nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from segmentation.core.faults import ENVIRONMENT_VARIABLE, SIGNAL_VARIABLE, fault_point, planned_signals


def arrivals_before_the_kill(plan: str, point: str, arrivals: int = 5) -> subprocess.CompletedProcess:
    """A fresh interpreter that prints each arrival at `point` before arriving, under `SEG_KILL_AT=plan`."""
    code = (f"from segmentation.core.faults import fault_point\nfor n in range(1, {arrivals + 1}):\n"
            f"    print(n, flush=True)\n    fault_point({point!r})\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, ENVIRONMENT_VARIABLE: plan})


def test_the_nth_arrival_is_killed_with_sigkill():
    result = arrivals_before_the_kill("between-epochs:3", "between-epochs")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2", "3"]


def test_other_points_pass_through():
    result = arrivals_before_the_kill("between-epochs:1", "checkpoint-before-rename")
    assert result.returncode == 0 and result.stdout.split() == ["1", "2", "3", "4", "5"]


@pytest.mark.unit
def test_no_plan_means_no_kill(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    for _ in range(3):
        fault_point("between-epochs")  # still alive


@pytest.mark.unit
@pytest.mark.parametrize("value", ["checkpoint-before-rename", "nowhere:1", "between-epochs:0"])
def test_a_malformed_kill_plan_is_refused(value, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, value)
    with pytest.raises(ValueError, match=ENVIRONMENT_VARIABLE):
        fault_point("between-epochs")


@pytest.mark.unit
def test_signal_plans_name_steps_validation_batches_and_the_moments_of_a_stop(monkeypatch):
    monkeypatch.setenv(SIGNAL_VARIABLE, "SIGTERM:3, SIGINT:val2,SIGINT:stopping,SIGUSR1:exiting")
    assert planned_signals() == [(signal.SIGTERM, "3"), (signal.SIGINT, "val2"), (signal.SIGINT, "stopping"),
                                 (signal.SIGUSR1, "exiting")]
    for value in ("SIGTERM", "SIGTERM:val", "SIGFOO:3", "SIGINT:later", "SIGTERM:3,"):
        monkeypatch.setenv(SIGNAL_VARIABLE, value)
        with pytest.raises(ValueError, match=SIGNAL_VARIABLE):
            planned_signals()
