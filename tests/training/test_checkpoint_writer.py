"""One checkpoint write per training state, in the background, other names as hard links (`checkpoint_writer`)."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from segmentation.core.storage import StorageError
from segmentation.training import checkpoint_writer
from segmentation.training.checkpoint_writer import EpochCheckpointWriter
from segmentation.training.checkpointing import AtomicCheckpointIO, read_checkpoint

from ..helpers import only_run_dir, tiny_fit_args


class CountingWriter(AtomicCheckpointIO):
    """seg's atomic writer, counting the files it serialises (and optionally slow, to hold a write in flight)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.written: list[str] = []
        self.finished: list[str] = []
        self.delay, self.fail = delay, fail

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        self.written.append(Path(path).name)
        time.sleep(self.delay)
        if self.fail:
            raise StorageError(f"could not write checkpoint {path} (No space left on device)")
        super().save_checkpoint(checkpoint, path, storage_options)
        self.finished.append(Path(path).name)


def state(epoch: int, step: int, weights: torch.Tensor, best: float) -> dict:
    """A checkpoint as Lightning dumps it: training state plus the callbacks' state at the moment of the save."""
    return {"epoch": epoch, "global_step": step, "state_dict": {"w": weights},
            "optimizer_states": [{"state": {0: {"exp_avg": weights * 2}}}], "callbacks": {"best": best}}


def deferred_writer(folder: Path, **counting) -> tuple[EpochCheckpointWriter, CountingWriter]:
    inner = CountingWriter(**counting)
    writer = EpochCheckpointWriter(inner)
    writer.deferred_folder = folder.absolute()
    return writer, inner


def epoch_and_last_with_links_refused(folder: Path, monkeypatch, code: int) -> EpochCheckpointWriter:
    """A writer with epoch=0.ckpt and last.ckpt of one state pending, where every hard link fails with `code`."""
    def refused(source, target):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(checkpoint_writer.os, "link", refused)
    writer, _ = deferred_writer(folder)
    for name in ("epoch=0.ckpt", "last.ckpt"):
        writer.save_checkpoint(state(0, 5, torch.ones(4), 0.2), folder / name)
    return writer


@pytest.mark.unit
def test_an_epochs_three_names_are_one_write_with_the_newest_callback_state(tmp_path):
    writer, inner = deferred_writer(tmp_path)
    weights = torch.arange(6.0)
    for name, best in (("best.ckpt", 0.5), ("epoch=3.ckpt", 0.6), ("last.ckpt", 0.7)):  # Lightning's order
        writer.save_checkpoint(state(3, 40, weights, best), tmp_path / name)
    assert not list(tmp_path.glob("*.ckpt"))  # nothing on the training thread yet
    weights += 100  # training goes on: the checkpoint holds the state at the save
    writer.settle()
    assert inner.written == ["best.ckpt"]  # serialised once
    inodes = {os.stat(tmp_path / name).st_ino for name in ("best.ckpt", "epoch=3.ckpt", "last.ckpt")}
    assert len(inodes) == 1 and os.stat(tmp_path / "last.ckpt").st_nlink == 3
    saved = read_checkpoint(tmp_path / "epoch=3.ckpt")
    assert torch.equal(saved["state_dict"]["w"], torch.arange(6.0)) and saved["callbacks"] == {"best": 0.7}
    assert not list(tmp_path.glob(".*tmp-*"))


@pytest.mark.unit
def test_removing_an_epoch_file_keeps_last_and_best_and_a_pending_name_is_dropped(tmp_path):
    writer, inner = deferred_writer(tmp_path)
    for name in ("epoch=0.ckpt", "last.ckpt", "best.ckpt"):
        writer.save_checkpoint(state(0, 10, torch.ones(3), 0.1), tmp_path / name)
    writer.start()
    writer.save_checkpoint(state(1, 20, torch.zeros(3), 0.1), tmp_path / "epoch=1.ckpt")
    writer.remove_checkpoint(tmp_path / "epoch=0.ckpt")  # --keep_last_epochs 1: waits for epoch 0's write
    writer.save_checkpoint(state(1, 20, torch.zeros(3), 0.1), tmp_path / "last.ckpt")
    writer.remove_checkpoint(tmp_path / "epoch=1.ckpt")  # still pending: never written
    writer.settle()
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert torch.equal(read_checkpoint(tmp_path / "best.ckpt")["state_dict"]["w"], torch.ones(3))
    assert read_checkpoint(tmp_path / "last.ckpt")["epoch"] == 1 and inner.written == ["epoch=0.ckpt", "last.ckpt"]


@pytest.mark.unit
def test_a_file_system_without_hard_links_gets_whole_copies(tmp_path, monkeypatch):
    writer = epoch_and_last_with_links_refused(tmp_path, monkeypatch, errno.EPERM)
    writer.settle()
    assert os.stat(tmp_path / "last.ckpt").st_ino != os.stat(tmp_path / "epoch=0.ckpt").st_ino
    assert (tmp_path / "last.ckpt").read_bytes() == (tmp_path / "epoch=0.ckpt").read_bytes()


@pytest.mark.unit
def test_a_link_the_disk_refuses_is_a_storage_error_naming_it_and_the_epoch_file_stays(tmp_path, monkeypatch):
    writer = epoch_and_last_with_links_refused(tmp_path, monkeypatch, errno.ENOSPC)
    with pytest.raises(StorageError, match=r"could not write checkpoint \S+last\.ckpt .*newest good checkpoint is "
                                           r"epoch=0\.ckpt"):
        writer.settle()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0.ckpt"]
    writer.teardown()


@pytest.mark.unit
def test_at_most_one_write_is_in_flight_and_the_training_thread_does_not_wait_for_it(tmp_path):
    threads = set(threading.enumerate())
    writer, inner = deferred_writer(tmp_path, delay=0.3)
    writer.save_checkpoint(state(0, 5, torch.ones(2), 0.0), tmp_path / "epoch=0.ckpt")
    began = time.perf_counter()
    writer.start()
    assert time.perf_counter() - began < 0.2 and inner.finished == []  # returned while the write goes on
    writer.save_checkpoint(state(1, 10, torch.ones(2), 0.0), tmp_path / "epoch=1.ckpt")
    writer.start()  # waits for epoch 0's write before epoch 1's begins
    assert inner.finished == ["epoch=0.ckpt"]
    writer.teardown()
    assert inner.finished == ["epoch=0.ckpt", "epoch=1.ckpt"]
    assert set(threading.enumerate()) <= threads  # the writer's thread has ended


@pytest.mark.unit
def test_a_failed_background_write_is_raised_on_the_training_thread(tmp_path):
    writer, _ = deferred_writer(tmp_path, fail=True)
    writer.save_checkpoint(state(0, 5, torch.ones(2), 0.0), tmp_path / "epoch=0.ckpt")
    writer.start()
    with pytest.raises(StorageError, match="could not write checkpoint .*epoch=0.ckpt"):
        writer.wait()
    writer.wait()  # raised once; nothing else in flight
    writer.teardown()


@pytest.mark.unit
def test_a_save_outside_the_run_folder_is_on_disk_when_the_call_returns(tmp_path):
    """A tuner saves a temporary checkpoint and loads it at once: only the run's own folder is deferred."""
    writer, inner = deferred_writer(tmp_path / "checkpoints")
    writer.save_checkpoint(state(0, 0, torch.ones(2), 0.0), tmp_path / ".lr_find.ckpt")
    assert (tmp_path / ".lr_find.ckpt").exists() and inner.finished == [".lr_find.ckpt"]
    writer.teardown()
    assert EpochCheckpointWriter(CountingWriter()).deferred_folder is None  # not armed: every save at once


def test_a_fit_writes_each_epoch_once_and_last_and_best_are_links_to_it(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=3", "--keep_last_epochs=1"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoints = only_run_dir(tmp_path / "lightning_logs") / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "epoch=2.ckpt", "last.ckpt"]
    assert os.stat(checkpoints / "last.ckpt").st_ino == os.stat(checkpoints / "epoch=2.ckpt").st_ino
    saved = read_checkpoint(checkpoints / "last.ckpt")
    best = read_checkpoint(checkpoints / "best.ckpt")
    assert saved["epoch"] == 2 and best["epoch"] <= 2
    # every callback's state in the one file is the state after all three saves of its epoch
    keepers = [s for key, s in saved["callbacks"].items() if "'monitor': 'epoch'" in key]
    assert [Path(p).name for k in keepers for p in k["best_k_models"]] == ["epoch=2.ckpt"]
    assert all(Path(k["last_model_path"]).name == "last.ckpt" for k in keepers)
