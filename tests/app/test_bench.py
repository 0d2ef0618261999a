"""`seg bench`: every figure measured on tiny data, the ratios computed from them, on the device it trains on."""

from __future__ import annotations

import json

import pytest
import torch

from segmentation.data.base import VolumeDataModule

from ..helpers import DEMO_CONFIG, TINY_CONFIG

ON_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if ON_CUDA else "cpu"  # where seg bench (as seg fit) trains: the GPU where one is visible
PRECISION = "bf16-mixed" if ON_CUDA else "32-true"  # seg's CUDA default, else Lightning's
RATES = ("ceiling_samples_per_second", "lightning_samples_per_second", "fit_samples_per_second",
         "plain_samples_per_second")


def bench(seg, demo_root, tmp_path, *options: str) -> dict:
    result = seg("bench", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), f"--data.root={demo_root}",
                 "--steps", "2", "--json", *options, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


@pytest.fixture()
def loader_devices(monkeypatch) -> list[tuple[str, object]]:
    """(cache mode, device asked for with `use_device`) of every training loader a datamodule builds."""
    asked: list[tuple[str, object]] = []
    original = VolumeDataModule.training_loader

    def training_loader(self, workers: int):
        asked.append((self.hparams.cache, self.cache_device))
        return original(self, workers)

    monkeypatch.setattr(VolumeDataModule, "training_loader", training_loader)
    return asked


def test_bench_json_reports_every_figure_and_ratios_from_measured_rates(demo_root, tmp_path, seg, loader_devices):
    figures = bench(seg, demo_root, tmp_path)
    assert figures["device"] == DEVICE and figures["precision"] == PRECISION and figures["compiled"] is False
    data = figures["data_patches_per_second"]
    # tiny.yaml: cache memory (the configured mode) and 0 workers: in process and with one worker each
    assert set(data) == {f"{mode}, {where}" for mode in ("none", "store", "memory") for where in ("in process",
                         "1 worker")} | {"gpu, in process"}
    assert all(rate > 0 for rate in data.values())
    assert set(figures["preparation_seconds"]) == {"store", "gpu", "memory"}
    for key in RATES:
        assert figures[key] > 0, key
    for ratio, numerator, denominator in (("fit_over_ceiling", "fit", "ceiling"), ("fit_over_plain", "fit", "plain"),
                                          ("fit_over_lightning", "fit", "lightning")):
        assert figures[ratio] == pytest.approx(figures[f"{numerator}_samples_per_second"]
                                               / figures[f"{denominator}_samples_per_second"])
    verdict = figures["verdict"]
    assert "seg fit" in verdict and ("of the time on data" in verdict or "busy" in verdict)
    # every loader of every figure (data, ceiling, plain, Lightning, seg fit) was built for the bench's device
    assert len(loader_devices) >= 7 + 4 and {device for _, device in loader_devices} == {torch.device(DEVICE)}


def test_bench_trains_the_compiled_network_in_every_figure(demo_root, tmp_path, seg, monkeypatch):
    runs: list[int] = []

    def counting(graph, example_inputs):  # runs the traced graph as it is: no C compiler, and counted
        def run(*args):
            runs.append(1)
            return graph.forward(*args)
        return run

    original = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: original(self, backend=counting))
    figures = bench(seg, demo_root, tmp_path, "--model.compile=true")
    assert figures["compiled"] is True
    # ceiling, plain (twice), Lightning, seg fit: WARMUP + 2 forward passes each, one graph each (a copy ran eager)
    assert len(runs) == 5 * (2 + 2)


@pytest.mark.gpu
def test_bench_holds_gpu_cache_volumes_on_the_gpu_for_every_figure(demo_root, tmp_path, seg, loader_devices):
    figures = bench(seg, demo_root, tmp_path, "--data.cache=gpu")
    assert figures["device"] == "cuda" and figures["fit_samples_per_second"] > 0
    assert {device for cache, device in loader_devices if cache == "gpu"} == {torch.device("cuda")}


def test_network_only_measures_the_networks_on_the_configured_cache_and_no_data_figure(demo_root, tmp_path, seg,
                                                                                       loader_devices):
    figures = bench(seg, demo_root, tmp_path, "--network-only", "--data.cache=store")
    assert figures["data_patches_per_second"] == {} and figures["preparation_seconds"] == {}
    assert all(figures[key] > 0 for key in RATES)
    assert {cache for cache, _ in loader_devices} == {"store"}  # no other cache mode built


def test_bench_help_names_the_figures(seg):
    result = seg("bench", "--help")
    assert result.returncode == 0 and "ceiling" in result.stdout and "plain MONAI + PyTorch loop" in result.stdout
    assert "Lightning loop alone" in result.stdout and "seg fit's trainer" in result.stdout
