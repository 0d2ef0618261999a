"""`cache: gpu`'s memory check: the training volumes beside the model, its optimizer and one step, on every rank."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from segmentation.core.errors import SegError
from segmentation.core.memory import GiB, GpuCacheBudget
from segmentation.data import caching
from segmentation.data.brats import BraTSDataModule
from segmentation.data.synthetic import write

pytestmark = pytest.mark.unit


def fake_trainer(optimizer: str = "sgd", devices: int = 1, precision: str = "32-true") -> SimpleNamespace:
    """What the check reads of a trainer: its model (parameters, optimizer name), devices, precision, root device."""
    model = torch.nn.Conv3d(4, 8, 3)
    model.hparams = {"optimizer": optimizer}  # type: ignore[assignment]
    return SimpleNamespace(lightning_module=model, num_devices=devices, precision=precision,
                           strategy=SimpleNamespace(root_device=torch.device("cpu")))


@pytest.fixture()
def stored(tmp_path):
    """A BraTS datamodule whose store holds its 4 cases (fit split made)."""
    root = write("brats", tmp_path / "brats", cases=4, shape=(24, 24, 20), seed=0)
    datamodule = BraTSDataModule(str(root), cache="store", num_workers=0, patch_size=(16, 16, 16), batch_size=2,
                                 samples_per_volume=2, val_fraction=0.25)
    datamodule.setup("fit")
    return datamodule


def test_the_budget_counts_the_volumes_the_model_and_its_optimizer_and_every_rank_on_the_cpu(stored):
    ids = [case["case"] for case in stored.train_cases]
    store = stored.store()
    trainer = fake_trainer("sgd", devices=3)
    budget = caching.gpu_cache_budget(store, ids, torch.device("cpu"), trainer, (2, 4, 16, 16, 16))
    files = sum(store.array_path(i, role).stat().st_size for i in ids for role in ("image", "label"))
    assert (budget.volumes, budget.volume_count, budget.ranks, budget.copies) == (files, 3, 3, 1)
    assert budget.parameters == (4 * 8 * 27 + 8) * 4 and budget.step_peak == 0  # (measured on CUDA only)
    alone = caching.gpu_cache_budget(store, ids, torch.device("cpu"))  # (no trainer: seg bench's data figures)
    assert (alone.ranks, alone.parameters, alone.copies) == (1, 0, 2)


def test_a_short_budget_is_refused_before_any_volume_is_loaded(stored, monkeypatch):
    monkeypatch.setattr(caching, "open_volumes", lambda *a, **k: pytest.fail("a volume was loaded"))
    short = GpuCacheBudget("cpu", free=GiB, volumes=GiB, volume_count=3)
    with pytest.raises(SegError, match="--data.cache gpu: every rank holds all 3 training volumes"):
        caching.stored_datasets(stored.store(), ["a"], ["b"], torch.device("cpu"), stored.hparams, None,
                                lambda device: short)


def test_cache_gpu_under_ddp_on_the_cpu_is_refused_counting_each_rank_copy(tmp_path, monkeypatch):
    root = write("brats", tmp_path / "brats", cases=4, shape=(24, 24, 20), seed=0)
    datamodule = BraTSDataModule(str(root), cache="gpu", num_workers=0, patch_size=(16, 16, 16), batch_size=2,
                                 samples_per_volume=2, val_fraction=0.25)
    datamodule.trainer = fake_trainer("adamw", devices=2)  # type: ignore[assignment]
    datamodule.prepare_data()
    volumes = sum(datamodule.store().array_path(c["case"], r).stat().st_size
                  for c in datamodule.list_cases() for r in ("image", "label"))
    monkeypatch.setattr(caching, "free_memory", lambda device: volumes * 6 // 5)  # (3 of 4 cases train)
    with pytest.raises(SegError) as refused:
        datamodule.setup("fit")
    message = str(refused.value)
    assert "each of the 2 ranks sharing cpu holds all 3 training volumes" in message
    assert "optimizer state 0.00 GiB (2 copies)" in message and "--data.cache store" in message
    datamodule.trainer = fake_trainer("adamw", devices=1)  # type: ignore[assignment]
    datamodule.setup("fit")  # one rank's copy fits
    assert len(datamodule.train_set) == 3
