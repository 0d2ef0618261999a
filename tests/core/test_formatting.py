"""Durations for the console (ETA, estimates, batch summaries)."""

from __future__ import annotations

import pytest

from segmentation.core.formatting import format_duration

from ..helpers import seconds

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_durations_read_as_a_person_would_say_them():
    durations = [0.04, 3.24, 9.96, 42.4, 595, 3 * 3600 + 7 * 60 + 20]
    assert [format_duration(d) for d in durations] == ["0.0s", "3.2s", "10s", "42s", "9m 55s", "3h 07m"]
    assert all(seconds(format_duration(d)) == pytest.approx(d, abs=0.5) for d in durations[:5])
