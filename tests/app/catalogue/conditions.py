"""Bad conditions: read-only folders, full disks, a run another process trains into, signals at set points."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ...helpers import fill_disk
from .setting import Case, Setting

LOCK_NAME = ".seg-lock"  # (segmentation.core.directory_lock's name: the case states the file a user would see)


def full_disk(s: Setting, name: str) -> Path:
    """A 1 MiB file system under the scratch folder with no byte left."""
    folder = s.mounts.small_disk(s.tmp / name, "1m")
    fill_disk(folder, leave_bytes=0)
    return folder


def predict_one(s: Setting, into: Path) -> list[str]:
    return ["predict", s.last(), f"--prediction_dir={into}",
            f"--data.predict_images=[{s.root / 'imagesTr' / 'demo_000.nii.gz'}]"]


@contextmanager
def another_fit_holds_the_run(s: Setting):
    """The run's lock taken (flock on its own open file) and naming a live process, as a running fit holds it."""
    (s.run / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "host": "node-7", "since": "09:00"}))
    descriptor = os.open(s.run / LOCK_NAME, os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(descriptor)


CONDITIONS: dict[str, Case] = {
    "read-only run folder": Case(
        lambda s: s.fit(s.root, f"--trainer.default_root_dir={s.mounts.read_only(s.tmp / 'shared')}"),
        "Read-only file system); choose a writable folder with --trainer.default_root_dir", needs=("mounts",)),
    "read-only prediction folder": Case(
        lambda s: ["predict", s.last(), f"--prediction_dir={s.mounts.read_only(s.tmp / 'ro') / 'out'}"],
        "ro is not writable (Read-only file system); choose a writable folder with --prediction_dir",
        needs=("mounts",)),
    "read-only data folder with the store in it": Case(
        lambda s: s.fit(s.mounts.read_only(s.broken_data(lambda d: None)), "--data.cache=store"),
        "--data.cache_dir", needs=("mounts",)),
    "seg test into a read-only run directory": Case(
        lambda s: ["test", f"--ckpt_path={s.mounts.read_only(s.run) / 'checkpoints/last.ckpt'}",
                   "--data.test_on=val"], "(Read-only file system); copy the run directory", needs=("mounts",)),
    "a full disk while the store is built": Case(
        lambda s: s.fit(s.root, "--data.cache=store", f"--data.cache_dir={full_disk(s, 'cache')}"),
        "--data.cache_dir", status=3, needs=("mounts",), may_write=("cache/store_*", "cache/*.lock")),  # (empty)
    "a full disk while predicting": Case(lambda s: predict_one(s, full_disk(s, "predictions")), "demo_000",
                                         status=3, needs=("mounts",)),
    "SIGTERM while the store is built": Case(
        lambda s: s.fit(s.root, "--data.cache=store", f"--data.cache_dir={s.tmp / 'cache'}"),
        "seg: stopped by SIGTERM while checking the data and building the store, before training", status=75,
        env={"SEG_SIGNAL_AT": "SIGTERM:store1"}, may_write=("cache", "cache/*")),  # (the cases stored are kept)
    "a second fit into a run another fit trains": Case(
        lambda s: ["fit", s.last(), "--trainer.max_epochs=5"], f"is in use by seg process {os.getppid()} on node-7",
        during=another_fit_holds_the_run),
}
