"""The crop-first store: content equal to direct preprocessing, atomic per case, keyed by settings and sources."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from monai import transforms as mt

from segmentation.core.faults import ENVIRONMENT_VARIABLE, SIGNAL_VARIABLE
from segmentation.data.brats import BraTSDataModule
from segmentation.data.msd import MSDDataModule
from segmentation.data.patches import StoredVolumes, open_volumes
from segmentation.data.store import Store
from segmentation.data.synthetic import write

from ..helpers import run_seg, tiny_fit_args


def stored_module(kind: str, root, **settings):
    module = {"demo": MSDDataModule, "brats": BraTSDataModule}[kind]
    return module(str(root), **{"cache": "store", "num_workers": 0, "patch_size": (16, 16, 16), **settings})


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["demo", "brats"])
def test_padded_back_store_equals_direct_preprocessing_and_is_cropped(kind, tmp_path):
    root = write(kind, tmp_path / kind, cases=3, shape=(32, 32, 24), seed=1)
    datamodule = stored_module(kind, root, spacing=(1.5, 1.5, 1.5) if kind == "demo" else None)
    cases = datamodule.list_cases()
    datamodule.build_store(cases)
    store = datamodule.store()
    direct = mt.Compose(datamodule.preprocessing())
    volumes = StoredVolumes(open_volumes(store, [c["case"] for c in cases]), datamodule.label_transform())
    for index, case in enumerate(cases):
        expected, stored = direct(dict(case)), volumes[index]
        assert stored["image"].shape == expected["image"].shape and stored["label"].shape == expected["label"].shape
        np.testing.assert_allclose(stored["image"].numpy(), expected["image"].numpy(), rtol=1e-3, atol=2e-3)
        assert torch.equal(stored["label"], torch.as_tensor(expected["label"]).float())
        image, label = store.arrays(case["case"])
        assert image.dtype == np.float16 and label.dtype == np.uint8
        record, foreground = store.record(case["case"]), store.foreground(case["case"])
        assert all(n <= m for n, m in zip(label.shape, image.shape))  # the label's own box, inside the image's
        for value, (first, stop) in record.locations.items():  # every stored location holds its label value
            x, y, z = (foreground[first:stop] - np.array(record.label_start, dtype=np.int16)).T
            assert stop > first and (label[0][x, y, z] == int(value)).all()
            assert record.counts[value] == int((label == int(value)).sum())
    if kind == "brats":  # skull-stripped: the zero background around the head is not stored
        image, label = store.arrays(cases[0]["case"])
        assert np.prod(image.shape[1:]) < 0.8 * np.prod(store.record(cases[0]["case"]).full_shape)
        assert np.prod(label.shape[1:]) < 0.5 * np.prod(image.shape[1:])  # the tumour's box only


@pytest.mark.unit
def test_foreground_patches_come_at_the_configured_fraction(tmp_path):
    root = write("demo", tmp_path / "demo", cases=2, shape=(48, 48, 48), seed=0)

    def share_with_foreground(pos: float) -> float:
        datamodule = stored_module("demo", root, pos_fraction=pos, samples_per_volume=4, patch_size=(8, 8, 8))
        datamodule.setup("fit")
        patches = [p for epoch in range(100) for p in datamodule.train_set[(0, epoch)]]
        return float(np.mean([bool((p["label"] > 0).any()) for p in patches]))

    background_only = share_with_foreground(0.0)
    assert share_with_foreground(1.0) == 1.0  # centred on a stored foreground location, every time
    assert background_only < 0.6
    mixed = share_with_foreground(0.5)
    assert abs(mixed - (0.5 + 0.5 * background_only)) < 0.08, (mixed, background_only)


@pytest.mark.unit
def test_an_item_is_a_function_of_seed_epoch_and_index(tmp_path):
    root = write("demo", tmp_path / "demo", cases=3, shape=(24, 24, 24), seed=0)
    first, second = (stored_module("demo", root) for _ in range(2))
    first.setup("fit")
    second.setup("fit")
    a, b = first.train_set[(1, 7)], second.train_set[(1, 7)]
    assert all(torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"]) for x, y in zip(a, b))
    assert not torch.equal(first.train_set[(1, 8)][0]["image"], a[0]["image"])


@pytest.mark.unit
def test_a_truncated_array_is_named_and_its_case_stored_again(tmp_path, caplog):
    root = write("demo", tmp_path / "demo", cases=3, shape=(24, 24, 24), seed=0)
    datamodule = stored_module("demo", root)
    cases = datamodule.list_cases()
    datamodule.build_store(cases)
    image = datamodule.store().array_path(cases[2]["case"], "image")
    image.write_bytes(image.read_bytes()[:200])  # as a copy cut short would leave it
    assert datamodule.store().missing(cases) == [cases[2]]
    assert f"store: {image} is unreadable" in caplog.text and f"case {cases[2]['case']} is stored again" in caplog.text
    datamodule.build_store(cases)
    assert datamodule.store().missing(cases) == [] and datamodule.store().arrays(cases[2]["case"])[0].size > 100


@pytest.mark.unit
def test_a_changed_source_is_rebuilt_and_a_changed_setting_is_another_store(tmp_path):
    root = write("demo", tmp_path / "demo", cases=3, shape=(24, 24, 24), seed=0)
    datamodule = stored_module("demo", root)
    cases = datamodule.list_cases()
    datamodule.build_store(cases)
    assert datamodule.store().missing(cases) == []
    later = os.stat(cases[1]["image"]).st_mtime + 5
    os.utime(cases[1]["image"], (later, later))  # touched: its fingerprint changed
    assert datamodule.store().missing(cases) == [cases[1]]
    resampled = stored_module("demo", root, spacing=(2.0, 2.0, 2.0))
    assert resampled.store().folder != datamodule.store().folder and resampled.store().missing(cases) == cases


def test_a_kill_during_the_build_leaves_no_case_that_is_read_and_the_rerun_completes(demo_root, tmp_path, seg):
    data = tmp_path / "data"
    write("demo", data, cases=6, shape=(32, 32, 32), seed=0)
    args = tiny_fit_args(data, "--data.cache=store", "--trainer.max_epochs=1")
    killed = run_seg(*args, cwd=tmp_path, env={ENVIRONMENT_VARIABLE: "store-before-commit:3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = next((data / ".seg_cache").glob("store_*"))
    records = sorted(p.name for p in store.glob("*.json"))
    assert records == ["demo_000.json", "demo_001.json"]  # the third case's arrays are there, its commit is not
    assert (store / "demo_002.image.npy").is_file()
    cases = MSDDataModule(str(data)).list_cases()
    assert [c["case"] for c in Store(store).missing(cases)] == [f"demo_00{i}" for i in range(2, 6)]
    finished = seg(*args, cwd=tmp_path)  # (the rerun in-process: only the kill needs a process of its own)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "store: building 4 of 6 cases" in finished.stdout + finished.stderr + finished.log
    assert len(list(store.glob("*.json"))) == 6 and not list(store.glob(".*.tmp-*"))


def test_a_signal_during_the_build_stops_at_once_with_75_and_the_same_command_goes_on(demo_root, tmp_path, seg,
                                                                                     monkeypatch):
    args = tiny_fit_args(demo_root, "--data.cache=store", f"--data.cache_dir={tmp_path / 'cache'}",
                         "--trainer.max_epochs=1")
    monkeypatch.setenv(SIGNAL_VARIABLE, "SIGTERM:store2")
    stopped = seg(*args, cwd=tmp_path)
    assert stopped.returncode == 75 and "stopped by SIGTERM while checking the data and building" in stopped.stderr
    assert not (tmp_path / "lightning_logs").exists()  # before any run directory
    stored = len(list((tmp_path / "cache").glob("store_*/*.json")))
    assert 2 <= stored < 6  # the cases written when it stopped (2, and those the workers were writing), no more
    monkeypatch.delenv(SIGNAL_VARIABLE)
    finished = seg(*args, cwd=tmp_path)
    assert finished.returncode == 0 and f"store: building {6 - stored} of 6 cases" in finished.log
