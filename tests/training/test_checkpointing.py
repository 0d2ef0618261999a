"""Crash-safe checkpoints: atomic writes, `last` skipping corrupt files, clear refusals, and kills at named points."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import torch

from segmentation.app.run_history import load_run
from segmentation.core.directory_lock import LOCK_NAME
from segmentation.core.faults import ENVIRONMENT_VARIABLE
from segmentation.core.storage import StorageError
from segmentation.training.checkpointing import (
    AtomicCheckpointIO,
    checkpoint_candidates,
    first_words,
    newest_good_checkpoint,
    read_checkpoint,
    remove_stale_temporaries,
    versions_newest_first,
)

from ..helpers import copy_run, fill_disk, only_run_dir, run_seg, scalars, tiny_fit_args


@pytest.mark.unit
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


def test_a_read_only_checkpoint_folder_is_a_storage_error_naming_the_file(tmp_path, mounts):
    folder = tmp_path / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "state_dict": {"w": torch.ones(1000)}}, folder / "epoch=1.ckpt")
    mounts.read_only(folder)
    with pytest.raises(StorageError, match=r"could not write checkpoint .*epoch=2.ckpt \(Read-only file system; .* "
                                           r"nothing was overwritten and the newest good checkpoint is epoch=1.ckpt"):
        io.save_checkpoint({"epoch": 2}, folder / "epoch=2.ckpt")
    assert [p.name for p in folder.iterdir()] == ["epoch=1.ckpt"]


def test_a_full_disk_stops_the_run_with_every_checkpoint_intact_and_resume_continues(demo_root, tmp_path, seg, mounts):
    disk = mounts.small_disk(tmp_path / "disk", "48m")
    assert seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=1"), cwd=disk).returncode == 0
    checkpoints = only_run_dir(disk / "lightning_logs") / "checkpoints"
    saved = {p.name: p.stat().st_mtime_ns for p in checkpoints.iterdir()}
    filler = fill_disk(disk, leave_bytes=(checkpoints / "last.ckpt").stat().st_size // 2)  # room for logs, not a ckpt
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=2", "--ckpt_path=last"), cwd=disk)
    assert result.returncode == 3, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("seg: error:")]
    assert len(errors) == 1 and re.search(r"could not write checkpoint \S+/checkpoints/(best|epoch=1)\.ckpt", errors[0])
    assert "newest good checkpoint is last.ckpt" in errors[0] and "seg fit --ckpt_path last" in errors[0]
    assert "Traceback" not in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in checkpoints.iterdir()} == saved  # nothing half-written, none lost
    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 0
    filler.unlink()  # space freed: the same command continues the run
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=2", "--ckpt_path=last"), cwd=disk)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_checkpoint(checkpoints / "epoch=1.ckpt")["epoch"] == 1


@pytest.mark.unit
def test_stale_temporaries_are_removed_and_never_candidates(tmp_path):
    (tmp_path / "epoch=0.ckpt").write_bytes(b"x")
    stale = tmp_path / ".epoch=1.ckpt.tmp-4242"
    stale.write_bytes(b"half")
    assert [p.name for p in checkpoint_candidates(tmp_path)] == ["epoch=0.ckpt"]
    assert remove_stale_temporaries(tmp_path) == [stale] and not stale.exists()


def test_the_newest_checkpoint_is_chosen_by_what_it_records_not_by_file_time(finished_run, tmp_path):
    checkpoints = copy_run(finished_run, tmp_path) / "checkpoints"
    for name in ("epoch=1.ckpt", "epoch=2.ckpt", "last.ckpt"):
        os.utime(checkpoints / name, (1, 1))  # as a copy without times leaves them: older than epoch=0.ckpt
    assert newest_good_checkpoint(checkpoints) == checkpoints / "last.ckpt"
    (checkpoints / "last.ckpt").unlink()
    assert newest_good_checkpoint(checkpoints) == checkpoints / "epoch=2.ckpt"


def test_a_torch_file_that_is_no_lightning_checkpoint_is_never_the_newest_good_one(finished_run, tmp_path):
    checkpoints = copy_run(finished_run, tmp_path) / "checkpoints"
    torch.save({"weights": torch.ones(3)}, checkpoints / "epoch=9.ckpt")  # loads, but holds no training state
    truncate(checkpoints / "last.ckpt")
    assert newest_good_checkpoint(checkpoints) == checkpoints / "epoch=2.ckpt"


@pytest.mark.unit
def test_an_error_reason_is_cut_at_a_word_not_inside_one():
    assert first_words("a " * 100 + "end") .endswith("a ...") and len(first_words("x y " * 80)) <= 124
    assert first_words("short reason\nsecond line") == "short reason"


@pytest.mark.unit
def test_run_versions_are_ordered_by_number_not_by_time(tmp_path):
    for number in (2, 10, 3):
        (tmp_path / f"version_{number}").mkdir()
    os.utime(tmp_path / "version_2", (4e9, 4e9))  # touched last, e.g. by a copy
    assert [p.name for p in versions_newest_first(tmp_path)] == ["version_10", "version_3", "version_2"]


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_last_skips_truncated_files_with_a_warning(finished_run, demo_root, tmp_path, seg):
    checkpoints = copy_run(finished_run, tmp_path) / "checkpoints"
    truncate(checkpoints / "last.ckpt")
    truncate(checkpoints / "epoch=2.ckpt", keep=0.9)
    assert newest_good_checkpoint(checkpoints) == checkpoints / "epoch=1.ckpt"
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=3", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipping checkpoint" in result.log and "last.ckpt: truncated or corrupt" in result.log
    assert "Resuming from" in result.stdout and "epoch=1.ckpt (epoch 1 done" in result.stdout
    assert torch.load(checkpoints / "epoch=2.ckpt", weights_only=False)["epoch"] == 2  # rewritten whole


def test_an_explicit_truncated_checkpoint_is_refused_by_name(finished_run, tmp_path, seg):
    bad = copy_run(finished_run, tmp_path) / "checkpoints/epoch=2.ckpt"
    truncate(bad)
    result = seg("fit", "--ckpt_path", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert f"checkpoint {bad} is truncated or corrupt" in result.stderr
    assert "newest good checkpoint there is" in result.stderr and "Traceback" not in result.stderr


def test_last_without_any_checkpoint_starts_a_new_run(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=1", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no checkpoint of" in result.stdout and "starting a new run" in result.stdout
    assert (only_run_dir(tmp_path / "lightning_logs") / "checkpoints/epoch=0.ckpt").is_file()


def test_keep_last_epochs_prunes_old_epoch_files_and_logs_the_size(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--keep_last_epochs=2"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    names = {p.name for p in (only_run_dir(tmp_path / "lightning_logs") / "checkpoints").iterdir()}
    assert names == {"epoch=2.ckpt", "epoch=3.ckpt", "last.ckpt", "best.ckpt"}
    assert result.log.count("checkpoint size:") == 1
    best = max(v for _, v in scalars(only_run_dir(tmp_path / "lightning_logs"), "val/dice"))
    assert f"best val/dice: {best:.4f} (" in result.stdout and "best.ckpt)" in result.stdout  # not the epoch keeper's


def test_every_checkpoint_carries_the_best_score_of_its_own_epoch(finished_run):
    """last.ckpt and the epoch files are written after best.ckpt's callback has seen their epoch: a resume
    compares new epochs with the true best, never a stale one that would let a worse epoch replace best.ckpt."""
    dice = [v for _, v in scalars(finished_run, "val/dice")]
    for epoch, path in sorted(epoch_files(finished_run / "checkpoints").items()):
        states = torch.load(path, map_location="cpu", weights_only=False)["callbacks"]
        [best] = [state for key, state in states.items() if "monitor': 'val/dice'" in key or "val/dice" in key]
        assert float(best["best_model_score"]) == pytest.approx(max(dice[:epoch + 1]))


def epoch_files(checkpoints: Path) -> dict[int, Path]:
    return {int(p.stem.split("=")[1]): p for p in checkpoints.glob("epoch=*.ckpt")}


def temporaries(checkpoints: Path) -> list[Path]:
    return sorted(checkpoints.glob(".*.tmp-*"))


@pytest.mark.slow
def test_kills_during_a_write_and_between_epochs_lose_nothing_saved(demo_root, tmp_path, seg):
    """SIGKILL `seg fit` at two named points (`core.faults`); `--ckpt_path last` resumes each time.

    Kill 1 lands after the 4th checkpoint's temporary file is written and fsynced, before its
    rename: the temporary is left behind, every checkpoint under its final name is whole. Kill 2
    lands between two epochs of the resumed run. The last resume finishes the run.
    """
    epochs = 4
    args = tiny_fit_args(demo_root, f"--trainer.max_epochs={epochs}", "--ckpt_path=last")
    checkpoints = tmp_path / "lightning_logs/demo_unet_reduce_on_plateau/version_0/checkpoints"

    killed = run_seg(*args, cwd=tmp_path, env={ENVIRONMENT_VARIABLE: "checkpoint-before-rename:4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [temporary] = temporaries(checkpoints)  # the interrupted write: complete, fsynced, never renamed
    assert (checkpoints.parent / LOCK_NAME).exists()  # the killed process could not release its lock
    assert torch.load(temporary, map_location="cpu", weights_only=False)["epoch"] >= 1
    whole = {p.name: torch.load(p, map_location="cpu", weights_only=False)["epoch"] for p in checkpoints.glob("*.ckpt")}
    assert whole["epoch=0.ckpt"] == 0 and "epoch=2.ckpt" not in whole

    killed = run_seg(*args, cwd=tmp_path, env={ENVIRONMENT_VARIABLE: "between-epochs:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "Resuming from" in killed.stdout and not temporaries(checkpoints)  # removed at the resume's start
    assert "took over the lock of seg process" in killed.stdout  # the lock file the first kill left
    done = sorted(int(p.stem.split("=")[1]) for p in checkpoints.glob("epoch=*.ckpt"))
    assert done == list(range(done[-1] + 1)) and done[-1] < epochs - 1  # one more epoch, whole, then the kill
    assert torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] == done[-1]

    final = seg(*args, cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    assert f"epoch {done[-1]} done; continuing at epoch {done[-1] + 1} of {epochs}" in final.stdout
    assert sorted(p.name for p in checkpoints.glob("epoch=*.ckpt")) == [f"epoch={e}.ckpt" for e in range(epochs)]
    assert not temporaries(checkpoints) and "took over the lock" in final.log
    assert not (checkpoints.parent / LOCK_NAME).exists()
    # an epoch that a kill cut short is logged again by the resume: TensorBoard (and seg report) keep the later
    steps = {step for step, _ in scalars(checkpoints.parent, "lr")}
    assert len(steps) == epochs and sorted(load_run(checkpoints.parent).lr) == list(range(epochs))


class RunsCodeWhenUnpickled:
    """What a malicious checkpoint carries: unpickling it calls `open(marker, "w")` (any callable would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant_payload(checkpoint: Path, marker: Path) -> None:
    """Rewrite `checkpoint` with a payload beside its real content."""
    content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.save({**content, "payload": RunsCodeWhenUnpickled(marker)}, checkpoint)


def test_a_checkpoint_that_would_run_code_is_refused_before_it_runs(finished_run, tmp_path, seg, monkeypatch):
    run = copy_run(finished_run, tmp_path)
    evil, marker = run / "checkpoints/epoch=2.ckpt", tmp_path / "the_payload_ran"
    plant_payload(evil, marker)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    for command in ("fit", "validate", "predict"):
        result = seg(command, "--ckpt_path", str(evil), cwd=tmp_path)
        assert result.returncode == 2, command
        assert f"checkpoint {evil} holds io.open" in result.stderr and "SEG_TRUST_CHECKPOINTS=1" in result.stderr
        assert "Traceback" not in result.stderr and not marker.exists(), command
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before

    monkeypatch.setenv("SEG_TRUST_CHECKPOINTS", "1")  # the documented opt-in: the full unpickler (so it runs)
    from segmentation.training.checkpointing import read_checkpoint

    read_checkpoint(evil)
    assert marker.exists()


def test_last_skips_a_checkpoint_that_would_run_code(finished_run, demo_root, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    marker = tmp_path / "the_payload_ran"
    plant_payload(run / "checkpoints/last.ckpt", marker)
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=4", "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipping checkpoint" in result.log and "last.ckpt holds io.open" in result.log
    assert "Resuming from" in result.stdout and "epoch=2.ckpt (epoch 2 done" in result.stdout and not marker.exists()
