"""One test per entry of `core.internals`: each fails when a Lightning/torch upgrade changes what it relies on."""

from __future__ import annotations

import inspect

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import DataLoader, TensorDataset

from segmentation.core import internals

pytestmark = pytest.mark.floors  # what seg relies on in Lightning and torch: repeated at the version floors
BATCHES, EPOCHS = 3, 2


class Tiny(pl.LightningModule):
    """A linear model on 3 batches of random numbers: a real fit loop in a fraction of a second."""

    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(BATCHES, 2)), batch_size=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.get("lr", 0.1))


def tiny_trainer(tmp_path, callbacks=()) -> pl.Trainer:
    return pl.Trainer(max_epochs=EPOCHS, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path, callbacks=list(callbacks), accelerator="cpu")


class Recorder(pl.Callback):
    def __init__(self):
        self.batches_at_epoch_end, self.epochs_at_epoch_start, self.logging_step_at_end = [], [], None

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs_at_epoch_start.append(internals.epochs_completed(trainer))

    def on_train_epoch_end(self, trainer, pl_module):
        self.batches_at_epoch_end.append(internals.batches_trained_this_epoch(trainer))

    def on_train_end(self, trainer, pl_module):
        assert hasattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped")  # (logging_step falls back silently)
        self.logging_step_at_end = internals.logging_step(trainer)


def test_fit_loop_progress_counts_batches_epochs_and_logging_steps(tmp_path):
    recorder = Recorder()
    tiny_trainer(tmp_path, [recorder]).fit(Tiny())
    assert recorder.batches_at_epoch_end == [BATCHES] * EPOCHS
    assert recorder.epochs_at_epoch_start == list(range(EPOCHS))
    assert recorder.logging_step_at_end == BATCHES * EPOCHS


def test_a_checkpoint_records_the_epochs_its_fit_loop_completed(tmp_path):
    trainer = tiny_trainer(tmp_path)
    trainer.fit(Tiny())
    trainer.save_checkpoint(tmp_path / "done.ckpt")
    saved = torch.load(tmp_path / "done.ckpt", weights_only=False)
    assert internals.epochs_completed_in_checkpoint(saved) == EPOCHS
    assert internals.epochs_completed_in_checkpoint({"epoch": 3}) is None


@pytest.mark.unit
def test_set_last_lr_is_what_get_last_lr_returns():
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    assert hasattr(scheduler, "_last_lr")
    internals.set_last_lr(scheduler, [0.25])
    assert scheduler.get_last_lr() == [0.25]


@pytest.mark.unit
def test_scheduler_fields_load_as_load_state_dict_would():
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max")
    fields = {"best": 0.7, "num_bad_epochs": 3, "cooldown_counter": 1}
    assert set(fields) <= set(plateau.state_dict())  # the names the state dict uses
    internals.load_scheduler_fields(plateau, fields)
    assert {key: plateau.state_dict()[key] for key in fields} == fields


@pytest.mark.unit
def test_lightning_cli_still_parses_checkpoint_hyper_parameters_where_seg_disables_it():
    """seg's no-op override only matters while LightningCLI calls this method while it parses."""
    assert "_parse_ckpt_path" in inspect.getsource(LightningCLI)
    assert "_parse_ckpt_path" in vars(internals.CommandLineWinsCLI)


class Probe(internals.CommandLineWinsCLI):
    """Records what the internals read while the trainer is built, and hands the fit a checkpoint path."""

    seen: dict = {}

    def instantiate_trainer(self, **kwargs):
        Probe.seen = {"trainer": dict(self.trainer_config()), "yaml": self.subcommand_yaml()}
        self.set_ckpt_path(Probe.ckpt_path)
        return super().instantiate_trainer(**kwargs)


def test_the_cli_reads_its_config_and_passes_the_checkpoint_set_while_the_trainer_is_built(tmp_path):
    Probe.ckpt_path = str(tmp_path / "no-such.ckpt")
    args = ["fit", "--trainer.max_epochs=2", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path}", "--model.lr=0.5"]
    with pytest.raises(FileNotFoundError, match="no-such.ckpt"):  # the fit received the path set above
        Probe(Tiny, args=args, save_config_callback=None)
    assert Probe.seen["trainer"]["max_epochs"] == 2
    assert "lr: 0.5" in Probe.seen["yaml"] and "max_epochs: 2" in Probe.seen["yaml"]


class Halving(internals.ClosedFormScheduler):
    def get_lr(self):
        return [base * 0.5 ** self.last_epoch for base in self.base_lrs]


@pytest.mark.unit
def test_step_with_an_epoch_uses_the_closed_form():
    assert "_get_closed_form_lr" in inspect.getsource(torch.optim.lr_scheduler.LRScheduler.step)
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    scheduler = Halving(optimizer)
    with pytest.warns(UserWarning):  # (torch deprecates step(epoch); seg's resume relies on it)
        scheduler.step(3)
    assert scheduler.get_last_lr() == [0.125]


class Validated(Tiny):
    """Tiny with a 2-batch validation and a per-epoch schedule, recording what each fit ran."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple] = []

    def validation_step(self, batch, batch_idx):
        self.events.append(("validate", self.current_epoch, batch_idx))

    def on_train_epoch_start(self):
        self.events.append(("train", self.current_epoch))

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.arange(BATCHES * 2.0).reshape(BATCHES, 2)), batch_size=1)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(2, 2)), batch_size=1)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)}


class PendingValidation(pl.Callback):
    """Keeps the checkpoint of epoch 0's last batch, marked as validation pending, and writes it during validation
    (as seg's preemption does)."""

    def __init__(self, path):
        self.path, self.kept = path, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 0 and batch_idx + 1 == trainer.num_training_batches:
            self.kept = internals.with_validation_pending(internals.checkpoint_in_memory(trainer))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if self.kept is not None and batch_idx == 1:
            torch.save(self.kept, self.path)  # (its tensors are the live ones: written while nothing trains)
            self.kept = None


def test_a_checkpoint_with_its_validation_pending_resumes_into_that_validation_then_the_next_epoch(tmp_path):
    torch.manual_seed(0)
    whole = Validated()
    tiny_trainer(tmp_path, [PendingValidation(tmp_path / "pending.ckpt")]).fit(whole)
    torch.manual_seed(0)
    resumed = Validated()
    trainer = tiny_trainer(tmp_path)
    trainer.fit(resumed, ckpt_path=tmp_path / "pending.ckpt")
    assert resumed.events == [("validate", 0, 0), ("validate", 0, 1), ("train", 1), ("validate", 1, 0),
                              ("validate", 1, 1)]  # epoch 0's validation again, whole, then epoch 1 as before
    assert resumed.events == whole.events[whole.events.index(("train", 0)) + 1:]  # (after its sanity check)
    assert trainer.global_step == BATCHES * EPOCHS and trainer.optimizers[0].param_groups[0]["lr"] == 0.1 * 0.5 ** 2
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
