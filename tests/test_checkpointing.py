"""Crash-safe checkpoints: atomic writes, `last` skipping corrupt files, clear refusals, SIGKILL at random."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from segmentation.checkpointing import (
    AtomicCheckpointIO,
    checkpoint_candidates,
    newest_good_checkpoint,
    remove_stale_temporaries,
)

from .conftest import DEMO_CONFIG, TINY_CONFIG, only_run_dir, run_seg, seg_executable, tiny_fit_args


def test_a_write_that_dies_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "weights": torch.ones(1000)}, target)

    def die_halfway(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed during the write")

    monkeypatch.setattr(torch, "save", die_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind


def test_stale_temporaries_are_removed_and_never_candidates(tmp_path):
    (tmp_path / "epoch=0.ckpt").write_bytes(b"x")
    stale = tmp_path / ".epoch=1.ckpt.tmp-4242"
    stale.write_bytes(b"half")
    assert [p.name for p in checkpoint_candidates(tmp_path)] == ["epoch=0.ckpt"]
    assert remove_stale_temporaries(tmp_path) == [stale] and not stale.exists()


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture()
def finished_run(demo_root, tmp_path) -> Path:
    """A 3-epoch subprocess run; returns its run directory."""
    result = run_seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=3"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return only_run_dir(tmp_path / "lightning_logs")


def test_last_skips_truncated_files_with_a_warning(finished_run, demo_root, tmp_path):
    checkpoints = finished_run / "checkpoints"
    truncate(checkpoints / "last.ckpt")
    truncate(checkpoints / "epoch=2.ckpt", keep=0.9)
    assert newest_good_checkpoint(checkpoints) == checkpoints / "epoch=1.ckpt"
    result = run_seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=3", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "skipping checkpoint" in output and "last.ckpt: truncated or corrupt" in output
    assert "Resuming from" in result.stdout and "epoch=1.ckpt (epoch 1 done" in result.stdout
    assert torch.load(checkpoints / "epoch=2.ckpt", weights_only=False)["epoch"] == 2  # rewritten whole


def test_an_explicit_truncated_checkpoint_is_refused_by_name(finished_run, tmp_path):
    bad = finished_run / "checkpoints/epoch=2.ckpt"
    truncate(bad)
    result = run_seg("fit", "--ckpt_path", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"checkpoint {bad} is truncated or corrupt" in result.stderr
    assert "newest good checkpoint there is" in result.stderr and "Traceback" not in result.stderr


def test_last_without_any_checkpoint_starts_a_new_run(demo_root, tmp_path):
    result = run_seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=1", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no checkpoint of" in result.stdout and "starting a new run" in result.stdout
    assert (only_run_dir(tmp_path / "lightning_logs") / "checkpoints/epoch=0.ckpt").is_file()


def test_keep_last_epochs_prunes_old_epoch_files_and_logs_the_size(demo_root, tmp_path):
    result = run_seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--keep_last_epochs=2"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    names = {p.name for p in (only_run_dir(tmp_path / "lightning_logs") / "checkpoints").iterdir()}
    assert names == {"epoch=2.ckpt", "epoch=3.ckpt", "last.ckpt", "best.ckpt"}
    assert (result.stdout + result.stderr).count("checkpoint size:") == 1


def epoch_files(checkpoints: Path) -> dict[int, Path]:
    return {int(p.stem.split("=")[1]): p for p in checkpoints.glob("epoch=*.ckpt")}


def test_sigkill_at_random_moments_loses_at_most_the_epoch_in_progress(demo_root, tmp_path):
    """Kill `seg fit` repeatedly (some kills land in checkpoint writes); `--ckpt_path last` always resumes."""
    epochs = 12
    args = [seg_executable(), "fit", "--config", str(DEMO_CONFIG), "--config", str(TINY_CONFIG),
            f"--data.root={demo_root}", f"--trainer.max_epochs={epochs}", "--ckpt_path=last"]
    rng = random.Random(7)
    checkpoints = tmp_path / "lightning_logs/demo_unet_reduce_on_plateau/version_0/checkpoints"
    deadline = time.monotonic() + 150
    kills = 0
    while kills < 4 and time.monotonic() < deadline:
        process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        before = set(epoch_files(checkpoints)) if checkpoints.exists() else set()
        # wait until this process has written a checkpoint of its own, then kill it a random moment later
        while process.poll() is None and set(epoch_files(checkpoints) if checkpoints.exists() else {}) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is not None:
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        files = epoch_files(checkpoints)
        for path in files.values():  # every epoch file on disk is whole: writes are atomic
            torch.load(path, map_location="cpu", weights_only=False)
        newest = max(files)
        assert set(files) == set(range(newest + 1)), f"an epoch file is missing: {sorted(files)}"
        assert newest_good_checkpoint(checkpoints) in (files[newest], checkpoints / "last.ckpt")
    assert kills >= 2, "the runs ended before they could be killed"
    (checkpoints / ".epoch=99.ckpt.tmp-1").write_bytes(b"what a killed writer leaves")
    final = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    assert "Resuming from" in final.stdout
    assert set(epoch_files(checkpoints)) == set(range(epochs))
    assert not list(checkpoints.glob(".*.tmp-*"))
