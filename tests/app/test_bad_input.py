"""The catalogue of bad input: each case exits non-zero before any training step, with no traceback and one
`seg: error:` naming the file or option, and nothing saved changes.

(Issue 10's list. Damaged data files in detail: tests/data/test_checks.py; unsafe checkpoints and the run lock:
tests/training; a disk that fills up mid-run: tests/training/test_checkpointing.py.)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import nibabel as nib
import numpy as np
import pytest

from ..helpers import DEMO_CONFIG, Mounts, copy_run, tiny_fit_args

TOO_DEEP = '--model.network_kwargs={"channels": [4, 8, 16, 32, 64], "strides": [2, 2, 2, 2], "num_res_units": 0}'


@dataclass
class Setting:
    """What a case may use: the demo data, a finished run's copy, a scratch folder, and mounts."""

    root: Path
    run: Path
    tmp: Path
    mounts: Optional[Mounts]

    def last(self) -> str:
        return f"--ckpt_path={self.run / 'checkpoints/last.ckpt'}"

    def broken_data(self, breaker: Callable[[Path], None]) -> Path:
        """A copy of the demo data with one thing broken by `breaker(data folder)`."""
        data = self.tmp / "data"
        shutil.copytree(self.root, data, ignore=shutil.ignore_patterns(".seg_cache"))
        breaker(data)
        return data


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def rewrite(pattern: str, transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    """A breaker that rewrites every NIfTI file matching `pattern` (under the data folder) as `transform` of its
    voxels."""
    def breaker(data: Path) -> None:
        for path in data.glob(pattern):
            image = nib.load(str(path))
            nib.save(nib.Nifti1Image(transform(np.asanyarray(image.dataobj)), image.affine), str(path))
    return breaker


def rewrite_image(case: str, transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    return rewrite(f"imagesTr/{case}.nii.gz", transform)


def rewrite_label(case: str, transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    return rewrite(f"labelsTr/{case}.nii.gz", transform)


def shift_label_grid(case: str) -> Callable[[Path], None]:
    """A breaker that moves `labelsTr/<case>.nii.gz`'s grid 5 mm (its voxels no longer lie on the image's)."""
    def breaker(data: Path) -> None:
        path = data / "labelsTr" / f"{case}.nii.gz"
        image = nib.load(str(path))
        affine = image.affine.copy()
        affine[0, 3] += 5.0
        nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), affine), str(path))
    return breaker


def empty_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def nan_in_the_middle(data: np.ndarray) -> np.ndarray:
    spoiled = data.astype(np.float32)
    spoiled[16, 16, 16] = np.nan
    return spoiled


def cut_short(relative: str) -> Callable[[Path], None]:
    """A breaker that keeps the first half of a file's bytes (a copy cut short)."""
    def breaker(data: Path) -> None:
        path = data / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return breaker


def remove(relative: str) -> Callable[[Path], None]:
    def breaker(data: Path) -> None:
        (data / relative).unlink()
    return breaker


def link_loop(case: str) -> Callable[[Path], None]:
    def breaker(data: Path) -> None:
        path = data / "imagesTr" / f"{case}.nii.gz"
        path.unlink()
        path.symlink_to(path.name)  # points at itself
    return breaker


def rewrite_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A breaker that rewrites the task's dataset.json through `change(meta)`."""
    def breaker(data: Path) -> None:
        meta = json.loads((data / "dataset.json").read_text())
        change(meta)
        (data / "dataset.json").write_text(json.dumps(meta))
    return breaker


def file_in_the_way(path: Path) -> Path:
    path.write_text("not a folder")
    return path


# name -> (arguments, given a Setting; what the error names)
CASES: dict[str, tuple[Callable[[Setting], list[str]], str]] = {
    "negative lr": (lambda s: tiny_fit_args(s.root, "--model.lr=-0.001"), "--model.lr -0.001"),
    "zero batch size": (lambda s: tiny_fit_args(s.root, "--data.batch_size=0"), "--data.batch_size 0"),
    "zero epochs": (lambda s: tiny_fit_args(s.root, "--trainer.max_epochs=0"), "--trainer.max_epochs 0"),
    "max_epochs below the checkpoint's": (lambda s: ["fit", s.last(), "--trainer.max_epochs=2"],
                                          "--trainer.max_epochs 2: checkpoint"),
    "YAML syntax error": (
        lambda s: ["fit", "--config", str(write(s.tmp / "broken.yaml", "trainer:\n  max_epochs: [1, 2\n"))],
        "broken.yaml is not valid YAML at line"),
    "missing config file": (lambda s: ["fit", "--config", str(s.tmp / "nowhere.yaml")],
                            "nowhere.yaml does not exist (--config)"),
    "2D image in a 3D task": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_image("demo_000", lambda d: d[:, :, 16]))),
        "demo_000.nii.gz: image has 2 dimensions [32, 32]"),
    "4D image with another channel count": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_image("demo_001", lambda d: np.stack([d, d], -1)))),
        "demo_001.nii.gz: image holds 2 channel(s) [32, 32, 32, 2], but the dataset declares 1"),
    "symbolic link loop": (lambda s: tiny_fit_args(s.broken_data(link_loop("demo_002"))),
                           "demo_002.nii.gz: image is a symbolic link loop"),
    "patch larger than every volume": (lambda s: tiny_fit_args(s.root, "--data.patch_size=[16,16,64]"),
                                       "--data.patch_size [16, 16, 64] is larger than every volume"),
    "patch too small for the network's depth": (lambda s: tiny_fit_args(s.root, TOO_DEEP),
                                                "--data.patch_size [16, 16, 16] is too small for unet"),
    "prediction folder that is a file": (
        lambda s: ["predict", s.last(), f"--prediction_dir={file_in_the_way(s.tmp / 'out')}"], "--prediction_dir"),
    "the removed disk cache": (lambda s: tiny_fit_args(s.root, "--data.cache=disk"),
                               "--data.cache disk was removed: use --data.cache store"),
    "batch not a multiple of the patches per volume": (
        lambda s: tiny_fit_args(s.root, "--data.batch_size=3", "--data.samples_per_volume=2"),
        "--data.batch_size 3 is not a multiple of --data.samples_per_volume 2"),
    "negative workers": (lambda s: tiny_fit_args(s.root, "--data.num_workers=-3"), "--data.num_workers -3: must be 0"),
    "a foreground fraction above 1": (lambda s: tiny_fit_args(s.root, "--data.pos_fraction=2"),
                                      "--data.pos_fraction 2.0: must be a fraction from 0 to 1"),
    "every case for validation": (lambda s: tiny_fit_args(s.root, "--data.val_fraction=1.0"),
                                  "--data.val_fraction 1.0: must be a fraction from 0 to below 1"),
    "a zero spacing": (lambda s: tiny_fit_args(s.root, "--data.spacing=[0,0,0]"),
                       "--data.spacing [0.0, 0.0, 0.0]: each voxel size must be a positive number"),
    "validation every 0 epochs": (lambda s: tiny_fit_args(s.root, "--trainer.check_val_every_n_epoch=0"),
                                  "--trainer.check_val_every_n_epoch 0: must be 1 or more"),
    "a fold with no case": (lambda s: tiny_fit_args(s.root, "--data.fold=7", "--data.num_folds=10"),
                            "leaves no case to validate on (6 training, 0 validation, 0 test cases)"),
    "every case held out for test": (lambda s: tiny_fit_args(s.root, "--data.test_fraction=0.99"),
                                     "leaves no case to train on"),
    "dataset.json whose training entry is not a list": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_json(lambda meta: meta.update(training="all")))),
        "dataset.json: 'training' is a str, an MSD dataset.json has a list of {image, label} entries there"),
    "dataset.json entry without a label": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_json(lambda meta: meta["training"][0].pop("label")))),
        "every 'training' entry needs an 'image' and a 'label' path"),
    "config file that is not UTF-8": (
        lambda s: ["fit", "--config", str(write_bytes(s.tmp / "latin1.yaml", b"trainer: # \xe9t\xe9\n"))],
        "latin1.yaml is not UTF-8 text"),
    "config file that is a list": (lambda s: ["fit", "--config", str(write(s.tmp / "list.yaml", "- trainer\n"))],
                                   "list.yaml holds a list; a config is a mapping"),
    "empty config file": (lambda s: ["fit", "--config", str(write(s.tmp / "empty.yaml", ""))],
                          "empty.yaml holds nothing; a config is a mapping"),
    "seg report into a file": (lambda s: ["report", str(s.run), "--out", str(file_in_the_way(s.tmp / "out"))],
                               "is a file; give a folder for report.png and report.md"),
    "seg synth into a file": (lambda s: ["synth", "msd", "--out", str(file_in_the_way(s.tmp / "out"))],
                              "is a file; give a folder"),
    "seg synth with no cases": (lambda s: ["synth", "msd", "--out", str(s.tmp / "none"), "--cases", "0"],
                                "--cases 0 --shape 48 48 48: give 1 or more cases"),
    "seg synth with a negative shape": (
        lambda s: ["synth", "msd", "--out", str(s.tmp / "neg"), "--shape", "-4", "8", "8"], "8 voxels per axis"),
    "a checkpoint path that is a device": (
        lambda s: ["fit", f"--ckpt_path={link(s.tmp / 'zero.ckpt', Path('/dev/zero'))}"], "is not a regular file"),
    "an empty checkpoint file": (lambda s: ["fit", f"--ckpt_path={write(s.tmp / 'empty.ckpt', '')}"],
                                 "empty.ckpt is truncated or corrupt"),
    "a dataset name that climbs out of lightning_logs": (
        lambda s: tiny_fit_args(s.root, "--data.init_args.name=../../elsewhere"), "--data.name '../../elsewhere'"),
    "seg batch with an unknown schedule": (
        lambda s: ["batch", "--config", str(DEMO_CONFIG), "--schedulers", "sgdr", "--no-estimate"],
        "--schedulers sgdr: unknown; one of none, reduce_on_plateau"),
    "seg batch of 0 epochs": (lambda s: ["batch", "--config", str(DEMO_CONFIG), "--epochs", "0"], "--epochs 0"),
    "seg batch with a missing config": (lambda s: ["batch", "--config", str(s.tmp / "nowhere.yaml")],
                                        "nowhere.yaml: no such file"),
    "seg batch name that climbs out": (lambda s: ["batch", "--config", str(DEMO_CONFIG), "--name", "../.."],
                                       "--name '../..': a batch name is one folder name"),
    "NaN voxels in an image": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_image("demo_003", nan_in_the_middle))),
        "demo_003.nii.gz: image holds NaN or Inf voxels"),
    "a label with a value the dataset does not declare": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_label("demo_004", lambda d: np.where(d > 0, 7, d)))),
        "label holds values [7.0] outside the declared set [0, 1, 2]"),
    "a label of another shape than its image": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_label("demo_001", lambda d: d[:, :, :30].copy()))),
        "demo_001.nii.gz: label shape [32, 32, 30] differs from the image's [32, 32, 32]"),
    "a label with a 4th axis": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_label("demo_002", lambda d: np.stack([d, d], axis=-1)))),
        "label has shape [32, 32, 32, 2]: expected a 3D volume"),
    "a truncated image file": (lambda s: tiny_fit_args(s.broken_data(cut_short("imagesTr/demo_005.nii.gz"))),
                               "demo_005.nii.gz: image unreadable, truncated or not NIfTI"),
    "a missing label file": (lambda s: tiny_fit_args(s.broken_data(remove("labelsTr/demo_000.nii.gz"))),
                             "demo_000.nii.gz: label missing"),
    "resume with another architecture": (
        lambda s: ["fit", s.last(), "--trainer.max_epochs=5", "--model.architecture=segresnet"],
        "architecture: checkpoint 'unet', configured 'segresnet'"),
    "a label on another voxel grid than its image": (
        lambda s: tiny_fit_args(s.broken_data(shift_label_grid("demo_003"))),
        "demo_003.nii.gz: label affine differs from the image's (not the same voxel grid)"),
    "a data root that does not exist": (lambda s: tiny_fit_args(s.tmp / "nowhere"),
                                        "nowhere does not exist (--data.root)"),
    "a checkpoint that does not exist": (lambda s: ["fit", f"--ckpt_path={s.tmp / 'gone.ckpt'}"],
                                         "gone.ckpt does not exist (--ckpt_path)"),
    "a run directory without checkpoints": (
        lambda s: ["fit", f"--ckpt_path={empty_folder(s.tmp / 'run' / 'checkpoints').parent}"],
        "no loadable checkpoint in"),
    "dataset.json without training cases": (
        lambda s: tiny_fit_args(s.broken_data(rewrite_json(lambda meta: meta.update(training=[])))),
        "no labelled cases found in"),
    "labels that are all background": (
        lambda s: tiny_fit_args(s.broken_data(rewrite("labelsTr/*.nii.gz", np.zeros_like))),
        "holds background only (value 0): the network would learn nothing"),
    "keep 0 epoch files": (lambda s: tiny_fit_args(s.root, "--keep_last_epochs=0"),
                           "--keep_last_epochs 0: keep 1 or more epoch files"),
}
# cases that need a read-only mount (root, as on the CI machine; skipped where mounting is refused)
MOUNT_CASES = {
    "read-only run folder": (
        lambda s: tiny_fit_args(s.root, f"--trainer.default_root_dir={s.mounts.read_only(s.tmp / 'shared')}"),
        "Read-only file system); choose a writable folder with --trainer.default_root_dir"),
    "read-only prediction folder": (
        lambda s: ["predict", s.last(), f"--prediction_dir={s.mounts.read_only(s.tmp / 'ro') / 'out'}"],
        "ro is not writable (Read-only file system); choose a writable folder with --prediction_dir"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_naming_it_and_changes_nothing(name, demo_root, finished_run, tmp_path, seg):
    refused_without_a_trace(CASES[name], Setting(demo_root, copy_run(finished_run, tmp_path), tmp_path, None), seg)


@pytest.mark.parametrize("name", list(MOUNT_CASES))
def test_bad_input_on_read_only_mounts_exits_2_naming_it(name, demo_root, finished_run, tmp_path, seg, mounts):
    refused_without_a_trace(MOUNT_CASES[name], Setting(demo_root, copy_run(finished_run, tmp_path), tmp_path, mounts),
                            seg)


def refused_without_a_trace(case, setting: Setting, seg) -> None:
    """`seg` with the case's arguments exits 2 with one `seg: error:` naming it, and no saved file changes."""
    tmp_path = setting.tmp
    before = snapshot(tmp_path / "lightning_logs")
    make_args, named = case
    result = seg(*make_args(setting), cwd=tmp_path)
    assert result.returncode == 2, (named, result.stdout[-1000:], result.stderr[-1000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("seg: error:")]
    assert len(errors) == 1 and named in result.stderr, result.stderr[-1000:]
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path / "lightning_logs") == before  # no checkpoint touched, no run directory made
