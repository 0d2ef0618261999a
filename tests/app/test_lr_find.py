"""`seg lr-find` end to end on the demo data (in-process, tiny network, 20 steps): a plot, a suggestion within the
swept range, a ready `seg fit` line, and nothing left behind (no run directory, no checkpoint, no scratch file)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import yaml

from ..helpers import DEMO_CONFIG, TINY_CONFIG
from .catalogue.setting import snapshot

MIN_LR, MAX_LR = 1e-5, 1.0


def scratch_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("seg-lr-find-*"))


def test_lr_find_writes_a_plot_and_a_suggestion_and_leaves_nothing_behind(seg, demo_root, tmp_path):
    work = tmp_path / "work"
    earlier = work / "lightning_logs" / "demo_unet_reduce_on_plateau" / "version_0"
    earlier.mkdir(parents=True)
    (earlier / "config.yaml").write_text("an earlier run's file\n")
    configs = {path: path.read_bytes() for path in (DEMO_CONFIG, TINY_CONFIG)}
    before, scratch = snapshot(work), scratch_folders()
    out, fragment = tmp_path / "found", tmp_path / "lr.yaml"
    args = ["lr-find", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG), f"--data.root={demo_root}",
            "--steps", "20", "--min-lr", str(MIN_LR), "--max-lr", str(MAX_LR), "--out", str(out),
            "--apply", str(fragment)]
    result = seg(*args, cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    assert snapshot(work) == before  # no run directory, no checkpoint, no .lr_find_*.ckpt, nothing else either
    assert scratch_folders() == scratch  # Lightning's temporary checkpoint went with its scratch folder
    assert all(path.read_bytes() == text for path, text in configs.items())  # the config files untouched

    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "lr_find.json").read_text())
    assert MIN_LR <= record["suggestion"] <= MAX_LR and len(record["lr"]) == len(record["loss"]) == 20
    assert record["effective_batch"] == 2 and record["rule"] in ("steepest descent", "minimum/10")
    assert len(record["smoothed"]) == (record["diverged_at"] or 20)
    printed = re.search(r"suggested LR: (\S+) \(", result.stdout)
    assert printed and float(printed.group(1)) == float(f"{record['suggestion']:.3g}"), result.stdout
    assert "measured at an effective batch 2 (batch size 2 x 1 device(s)" in result.stdout
    assert f"seg fit --config {DEMO_CONFIG} --config {TINY_CONFIG} --data.root={demo_root} --steps" not in result.stdout
    assert (f"train with it: seg fit --config {DEMO_CONFIG} --config {TINY_CONFIG} --data.root={demo_root} "
            f"--model.lr {printed.group(1)}") in result.stdout
    assert yaml.safe_load(fragment.read_text()) == {"model": {"lr": float(printed.group(1))}}

    # its own fragment is replaced by a second run (a file it did not write is refused: the bad-input catalogue)
    again = seg(*args, cwd=work)
    assert again.returncode == 0, again.stderr[-2000:]
    assert snapshot(work) == before


def test_lr_find_help_states_the_rule(seg):
    result = seg("lr-find", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for words in ("exponential moving average", "burn-in", "steepest descent", "minimum's LR / 10",
                  "effective batch", "--min-lr", "--max-lr", "--steps", "--apply"):
        assert words in text, words
