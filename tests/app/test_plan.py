"""`seg plan` end to end: a checked dataset is planned without reading a file again, a foreign file is never
replaced, the planned config trains and its checkpoint carries the plan, and the README shows what it prints."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from contextlib import chdir

import pytest
import torch
import yaml

from segmentation.data import checks

from ..helpers import DEMO_CONFIG, REPO, run_seg


@pytest.fixture()
def demo_copy(demo_root, tmp_path):
    return shutil.copytree(demo_root, tmp_path / "demo", ignore=shutil.ignore_patterns(".seg_cache"))


def test_a_checked_dataset_is_planned_from_the_check_cache_alone(seg, demo_copy, tmp_path, monkeypatch):
    assert seg("check-data", "--config", str(DEMO_CONFIG), "--data.root", str(demo_copy)).returncode == 0

    def refuse(*args, **kwargs):
        raise AssertionError("seg plan read a file the check had read")

    monkeypatch.setattr(checks, "read_file", refuse)
    out = tmp_path / "plans" / "demo.yaml"
    result = seg("plan", "--config", str(DEMO_CONFIG), "--data.root", str(demo_copy), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for what in ("spacing", "patch", "strides", "batch", "normalisation", "lower resolution"):
        assert f"\n{what} " in f"\n{result.stdout}"
    assert "estimated on the meta device" in result.stdout  # no GPU: said to be an estimate
    plan = json.loads((tmp_path / "plans" / "demo.plan.json").read_text())
    fingerprint = json.loads((tmp_path / "plans" / "demo.fingerprint.json").read_text())
    assert len(fingerprint["cases"]) == 6 and plan["spacing"] == [1.5, 1.5, 2.0] and plan["lowres"] is None
    stats = fingerprint["foreground_intensity_properties_per_channel"]["CT"]
    config = yaml.safe_load(out.read_text())
    assert out.read_text().startswith("# Planned by `seg plan`")
    assert config["data"]["init_args"]["normalization"] == {
        "scheme": "ct", "clip": [round(stats["percentile_00_5"], 4), round(stats["percentile_99_5"], 4)],
        "mean": round(stats["mean"], 4), "std": round(stats["std"], 4)}
    assert config["data"]["init_args"]["patch_size"] == plan["patch_size"]
    assert config["model"]["network_kwargs"]["strides"] == plan["strides"][1:]


def test_a_file_seg_plan_did_not_write_is_never_replaced(seg, demo_copy, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("trainer: {max_epochs: 3}\n")
    result = seg("plan", "--config", str(DEMO_CONFIG), "--data.root", str(demo_copy), "--out", str(mine))
    assert result.returncode == 2 and "was not written by seg plan" in result.stderr
    assert mine.read_text() == "trainer: {max_epochs: 3}\n" and not (tmp_path / "mine.plan.json").exists()
    result = seg("plan", "--config", str(DEMO_CONFIG), "--data.root", str(demo_copy), "--memory-gb", "-1")
    assert result.returncode == 2 and "--memory-gb -1" in result.stderr


def test_the_planned_config_trains_and_its_checkpoint_carries_the_plan(seg, demo_copy, tmp_path):
    """`seg fit --config planned.yaml` trains, and its checkpoint holds the planned normalisation and network (that
    `seg predict` and `seg export` then use them from the checkpoint alone: tests/data/test_normalization.py)."""
    out = tmp_path / "planned.yaml"
    planned = seg("plan", "--config", str(DEMO_CONFIG), "--data.root", str(demo_copy), "--out", str(out))
    assert planned.returncode == 0, planned.stderr
    fit = seg("fit", "--config", str(out), "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
              cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    checkpoint = next((tmp_path / "lightning_logs").rglob("last.ckpt"))
    stored = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = yaml.safe_load(out.read_text())
    assert stored["datamodule_hyper_parameters"]["normalization"] == config["data"]["init_args"]["normalization"]
    assert stored["hyper_parameters"]["network_kwargs"] == config["model"]["network_kwargs"]
    assert stored["datamodule_hyper_parameters"]["patch_size"] == config["data"]["init_args"]["patch_size"]


def test_the_readme_shows_what_seg_plan_prints_for_the_liver_stand_in(seg, tmp_path):
    """The README's table is `seg plan`'s output for its own commands: the stand-in line, then the plan line."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Plan a run from your data"):]
    command = re.search(r"^(seg plan .*)$", section, re.MULTILINE).group(1)
    shown = section.split("```")[3].strip("\n")
    stand_in = re.search(r"`(seg synth msd --out\s+data/Task03_Liver[^`]*)`", readme.replace("\n   ", " ")).group(1)
    assert run_seg(*shlex.split(stand_in)[1:], cwd=tmp_path).returncode == 0
    config_args = [str(REPO / word) if word.startswith("configs/") else word for word in shlex.split(command)[1:]]
    with chdir(tmp_path):
        result = seg(*config_args)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()[: len(shown.splitlines())]
    assert printed == shown.splitlines()
