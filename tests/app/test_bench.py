"""`seg bench`: every figure measured on tiny data, the ratios computed from them."""

from __future__ import annotations

import json

import pytest

from ..helpers import DEMO_CONFIG, TINY_CONFIG


def test_bench_json_reports_every_figure_and_ratios_from_measured_rates(demo_root, tmp_path, seg):
    result = seg("bench", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), f"--data.root={demo_root}",
                 "--steps", "2", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    assert figures["device"] == "cpu" and figures["precision"] == "32-true" and figures["compiled"] is False
    data = figures["data_patches_per_second"]
    # tiny.yaml: cache memory (the configured mode) and 0 workers: in process and with one worker each
    assert set(data) == {f"{mode}, {where}" for mode in ("none", "store", "memory") for where in ("in process",
                         "1 worker")} | {"gpu, in process"}
    assert all(rate > 0 for rate in data.values())
    assert set(figures["preparation_seconds"]) == {"store", "gpu", "memory"}
    for key in ("ceiling_samples_per_second", "fit_samples_per_second", "plain_samples_per_second"):
        assert figures[key] > 0, key
    assert figures["fit_over_ceiling"] == pytest.approx(figures["fit_samples_per_second"]
                                                        / figures["ceiling_samples_per_second"])
    assert figures["fit_over_plain"] == pytest.approx(figures["fit_samples_per_second"]
                                                      / figures["plain_samples_per_second"])
    verdict = figures["verdict"]
    assert "seg fit" in verdict and ("of the time on data" in verdict or "busy" in verdict)


def test_bench_help_names_the_four_figures(seg):
    result = seg("bench", "--help")
    assert result.returncode == 0 and "ceiling" in result.stdout and "plain MONAI + PyTorch loop" in result.stdout
