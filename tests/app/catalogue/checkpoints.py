"""Bad checkpoints: empty, cut short, foreign, of another model, from a newer seg, or not files at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from .setting import BRATS_CONFIG, SMOKE_FRAGMENT, Case, Setting, empty_folder, link, write, write_bytes


def edited(change: Callable[[dict], None], name: str = "edited.ckpt") -> Callable[[Setting], Path]:
    """A copy of the finished run's last checkpoint changed by `change(content)`, beside the run."""
    def make(s: Setting) -> Path:
        content = torch.load(s.checkpoint(), map_location="cpu", weights_only=True)
        change(content)
        torch.save(content, s.tmp / name)
        return s.tmp / name
    return make


def from_a_newer_seg(content: dict) -> None:
    content["seg"]["version"] = "9.0.0"
    content["hyper_parameters"]["deep_supervision"] = True
    content["seg"]["config"] = content["seg"]["config"].replace("model:\n", "model:\n  deep_supervision: true\n", 1)


def five_classes(content: dict) -> None:
    content["hyper_parameters"].update(out_channels=5, class_names=["a", "b", "c", "d"])


def other_spacing(content: dict) -> None:
    content["datamodule_hyper_parameters"]["spacing"] = [2.0, 2.0, 2.0]


def a_weight_removed(content: dict) -> None:
    content["state_dict"].pop(sorted(content["state_dict"])[0])


def fit_from(make: Callable[[Setting], Path], *overrides: str):
    return lambda s: ["fit", f"--ckpt_path={make(s)}", "--trainer.max_epochs=5", *overrides]


def cut_short(s: Setting) -> Path:
    data = s.checkpoint().read_bytes()
    return write_bytes(s.tmp / "half.ckpt", data[: len(data) // 2])


def all_corrupt(s: Setting) -> Path:
    """A run directory whose every checkpoint is cut short."""
    for path in (s.run / "checkpoints").glob("*.ckpt"):
        path.write_bytes(path.read_bytes()[:100])
    return s.run


def without_last(s: Setting) -> Path:
    os.remove(s.checkpoint())
    return s.run


def plain_tensors(s: Setting) -> Path:
    torch.save({"weights": torch.zeros(3)}, s.tmp / "tensors.pt")
    return s.tmp / "tensors.pt"


CHECKPOINTS: dict[str, Case] = {
    "a checkpoint that does not exist": Case(lambda s: ["fit", f"--ckpt_path={s.tmp / 'gone.ckpt'}"],
                                             "gone.ckpt does not exist (--ckpt_path)"),
    "an empty checkpoint file": Case(lambda s: ["fit", f"--ckpt_path={write(s.tmp / 'empty.ckpt', '')}"],
                                     "empty.ckpt is truncated or corrupt"),
    "a checkpoint cut short": Case(fit_from(cut_short), "half.ckpt is truncated or corrupt"),
    "a text file as checkpoint": Case(lambda s: ["fit", f"--ckpt_path={write(s.tmp / 'notes.ckpt', 'epoch 3')}"],
                                      "notes.ckpt is truncated or corrupt"),
    "a torch file that is no seg checkpoint": Case(fit_from(plain_tensors), "tensors.pt"),
    "a checkpoint path that is a device": Case(
        lambda s: ["fit", f"--ckpt_path={link(s.tmp / 'zero.ckpt', Path('/dev/zero'))}"], "is not a regular file"),
    "a run directory without checkpoints": Case(
        lambda s: ["fit", f"--ckpt_path={empty_folder(s.tmp / 'run' / 'checkpoints').parent}"],
        "no loadable checkpoint in"),
    "a run directory whose every checkpoint is corrupt": Case(lambda s: ["fit", f"--ckpt_path={all_corrupt(s)}"],
                                                              "no loadable checkpoint in"),
    "max_epochs below the checkpoint's": Case(lambda s: ["fit", s.last(), "--trainer.max_epochs=2"],
                                              "--trainer.max_epochs 2: checkpoint"),
    "max_epochs given twice, the last below the checkpoint's": Case(
        lambda s: ["fit", s.last(), "--trainer.max_epochs=9", "--trainer.max_epochs=2"],
        "--trainer.max_epochs 2: checkpoint"),
    "resume with another architecture": Case(
        lambda s: ["fit", s.last(), "--trainer.max_epochs=5", "--model.architecture=segresnet"],
        "architecture: checkpoint 'unet', configured 'segresnet'"),
    "a checkpoint of another class count": Case(fit_from(edited(five_classes)), "out_channels: checkpoint 5"),
    "a checkpoint of another dataset's channels": Case(
        lambda s: ["validate", s.last(), "--config", str(BRATS_CONFIG), "--config", str(SMOKE_FRAGMENT),
                   f"--data.init_args.root={s.roots('brats')}"], "in_channels: checkpoint 1, configured 4"),
    "a checkpoint missing a weight": Case(fit_from(edited(a_weight_removed)), "edited.ckpt"),
    "a checkpoint from a newer seg": Case(fit_from(edited(from_a_newer_seg)), "newer seg"),
    "test from an empty checkpoint": Case(lambda s: ["test", f"--ckpt_path={write(s.tmp / 'empty.ckpt', '')}"],
                                          "empty.ckpt is truncated or corrupt"),
    "predict from a checkpoint that does not exist": Case(
        lambda s: ["predict", f"--ckpt_path={s.tmp / 'gone.ckpt'}"], "gone.ckpt does not exist (--ckpt_path)"),
    "validate a run directory without checkpoints": Case(
        lambda s: ["validate", f"--ckpt_path={empty_folder(s.tmp / 'run' / 'checkpoints').parent}"],
        "no loadable checkpoint in"),
    "an ensemble member of another class count": Case(
        lambda s: ["predict", s.last(), "--ensemble", str(edited(five_classes)(s))],
        "disagree on model.out_channels 5 (not 3)"),
    "an ensemble member of another preprocessing": Case(
        lambda s: ["test", s.last(), "--ensemble", str(edited(other_spacing)(s))], "data.spacing [2.0, 2.0, 2.0]"),
    "a postprocessing file that is not a decision": Case(
        lambda s: ["predict", s.last(), "--postprocessing", str(write(s.tmp / "decision.json", "{}"))],
        "not a postprocessing decision of seg report --cv"),
    "an export of a checkpoint that does not exist": Case(
        lambda s: ["export", "--ckpt_path", str(s.tmp / "gone.ckpt"), "--out", str(s.tmp / "exported")],
        "seg export: checkpoint"),
    "an export in an unknown format": Case(
        lambda s: ["export", s.last(), "--out", str(s.tmp / "exported"), "--format", "tflite"],
        "--format: invalid choice: 'tflite'"),
    "an ensemble member that does not exist": Case(
        lambda s: ["predict", s.last(), "--ensemble", str(s.tmp / "gone.ckpt")],
        "gone.ckpt does not exist (--ensemble)"),
    "an ensemble without --ckpt_path": Case(
        lambda s: ["predict", *s.fit(s.root)[1:], "--ensemble", str(s.checkpoint())], "--ensemble needs --ckpt_path"),
    "an ensemble in seg fit": Case(lambda s: ["fit", s.last(), "--ensemble", str(s.checkpoint())],
                                   "options of seg test and seg predict, not of seg fit"),
    "seg test of an ensemble on cases its models validated on": Case(
        lambda s: ["test", s.last(), "--ensemble", str(s.checkpoint()), "--data.test_on=val"],
        "scores no case a model has seen (val split)"),
    "mirror TTA along an axis that is not spatial": Case(
        lambda s: ["predict", s.last(), "--tta", "flips", "--tta_axes", "0,3"], "--tta_axes 0,3: give spatial axes"),
    "TTA axes without --tta flips": Case(lambda s: ["predict", s.last(), "--tta_axes", "0", "1"],
                                         "--tta_axes chooses the flips of --tta flips"),
    "a TTA of an unknown kind": Case(lambda s: ["test", s.last(), "--tta", "rotations"], "--tta rotations: give flips"),
    # a promise kept rather than a refusal: the newest epoch file stands in for a deleted last.ckpt
    "resume after last.ckpt was deleted": Case(
        lambda s: ["fit", f"--ckpt_path={without_last(s)}", "--trainer.max_epochs=4"], "epoch=2.ckpt (epoch 2 done",
        status=0, may_write=("lightning_logs/*",)),
}
