"""Helpers of the test suite: the `seg` command in-process or as a real subprocess, TensorBoard reads, runs."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import chdir, nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segmentation.app.main import main
from segmentation.data.synthetic.msd import ct_case

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
TINY_CONFIG = REPO / "tests" / "tiny.yaml"


@dataclass
class Result:
    """What one `seg` invocation did: exit status, stdout, stderr (and the log records, in-process)."""

    returncode: int
    stdout: str
    stderr: str
    log: str = ""


def seg_command() -> list[str]:
    """The installed `seg` console script beside this Python, else this Python's `-m segmentation` (a venv
    over the system's packages, as the CI's version-floor run, has no script of its own)."""
    beside = Path(sys.executable).with_name("seg")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "segmentation"]


def run_seg(*args: str, cwd: Path, timeout: float = 600, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run the real `seg` command as a subprocess (for what only a new process shows: exit codes, signals,
    start-up imports); returns the completed process (text output)."""
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [*seg_command(), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def seg_in_process(args: list[str], cwd: Optional[Path] = None) -> int:
    """`seg ARGS` in this process (imports paid once for the whole suite); its exit status."""
    with chdir(cwd) if cwd is not None else nullcontext():
        try:
            return main(list(args))
        except SystemExit as exit_:  # argparse and jsonargparse exit on bad arguments
            return exit_.code if isinstance(exit_.code, int) else 1


def seg_capturing(args: list[str], cwd: Optional[Path] = None) -> Result:
    """`seg ARGS` in this process with its printed output captured (for fixtures, where capsys is not available)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = seg_in_process(args, cwd)
    return Result(code, out.getvalue(), err.getvalue())


def tiny_fit_args(root: Path, *overrides: str) -> list[str]:
    """`fit` arguments for a tiny run on `root`: demo config + the tests' tiny fragment + overrides."""
    return [
        "fit",
        "--config", str(DEMO_CONFIG),
        "--config", str(TINY_CONFIG),
        "--data.init_args.root", str(root),
        *overrides,
    ]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every event of `tag` in the run directory's TensorBoard files, in order."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(event.step, event.value) for event in events.Scalars(tag)]


def values(run_dir: Path, tag: str) -> list[float]:
    """The values of `tag`, in order."""
    return [value for _, value in scalars(run_dir, tag)]


def only_run_dir(logs: Path) -> Path:
    """The single `<name>/version_N` directory under `logs`."""
    runs = sorted(p for p in logs.glob("*/version_*") if p.is_dir())
    assert len(runs) == 1, f"expected one run directory under {logs}, found {runs}"
    return runs[0]


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of `run` (and its lightning_logs parents) under `dest`; returns the copied run directory."""
    shutil.copytree(run.parents[1], dest / "lightning_logs")
    return dest / run.relative_to(run.parents[2])


def dice_by_numpy(prediction: np.ndarray, truth: np.ndarray, value: int) -> float:
    """Dice of label `value` by seg's policy, written out independently of `segmentation.model.metrics`."""
    p, t = prediction == value, truth == value
    if not p.any() and not t.any():
        return 1.0
    return float(2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum()))


class Mounts:
    """Real read-only and size-limited file systems for the fault tests (needs root, as on the CI machine).

    Permission bits stop nobody running as root; a read-only bind mount and a small tmpfs refuse writes
    exactly as a read-only share or a full disk does.
    """

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def _mount(self, *args: str) -> None:
        subprocess.run(["mount", *args], check=True, capture_output=True, text=True)

    def read_only(self, folder: Path) -> Path:
        """`folder` (made if missing) remounted onto itself read-only; returns it."""
        folder.mkdir(parents=True, exist_ok=True)
        self._mount("--bind", str(folder), str(folder))
        self.mounted.append(folder)
        self._mount("-o", "remount,bind,ro", str(folder))
        return folder

    def small_disk(self, folder: Path, size: str) -> Path:
        """A tmpfs of `size` (e.g. "32m") mounted on `folder` (made if missing); returns it."""
        folder.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        self.mounted.append(folder)
        return folder

    def release(self) -> None:
        """Unmount everything this object mounted, newest first."""
        for folder in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        self.mounted.clear()


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Fill `folder`'s file system with one file until `leave_bytes` stay free; returns the filler file."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as handle:
        remaining = max(0, free - leave_bytes)
        while remaining > 0:
            chunk = min(remaining, 1 << 24)
            handle.write(b"\0" * chunk)
            remaining -= chunk
    return filler


DETERMINISTIC = ["--trainer.deterministic=true", "--data.num_workers=1"]  # bitwise-repeatable CPU runs


def fit_tiny(root: Path, logs: Path, *overrides: str) -> Path:
    """A tiny in-process `seg fit` under `logs`; returns its run directory."""
    assert seg_in_process(tiny_fit_args(root, f"--trainer.default_root_dir={logs}", *DETERMINISTIC, *overrides)) == 0
    return only_run_dir(logs / "lightning_logs")


def resume_in_process(ckpt: Path, *overrides: str, capsys=None) -> str:
    """`seg fit --ckpt_path CKPT [overrides]` in-process, no config; returns what it printed."""
    assert seg_in_process(["fit", f"--ckpt_path={ckpt}", *overrides]) == 0
    return capsys.readouterr().out if capsys else ""


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file."""
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def oblique_las_affine() -> np.ndarray:
    """LAS axes, anisotropic 0.9 x 1.3 x 3.1 mm voxels, rotated 20 degrees about z, shifted."""
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.9, 1.3, 3.1])
    affine[:3, 3] = [31.5, -12.0, 7.25]
    return affine


def write_oblique_case(folder, shape=(30, 26, 14)):
    """A synthetic CT case and its (float) label on an oblique LAS grid in `folder`: (image path, label array)."""
    image, label = ct_case(np.random.default_rng(3), shape)
    affine = oblique_las_affine()
    nib.save(nib.Nifti1Image(image, affine), folder / "oblique_ct.nii.gz")
    nib.save(nib.Nifti1Image(label.astype(np.float32), affine), folder / "oblique_label.nii.gz")  # float labels
    return folder / "oblique_ct.nii.gz", label


def seconds(duration: str) -> float:
    """`9m 55s` -> 595, `3.2s` -> 3.2 (the inverse of core.formatting.format_duration)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(part[:-1]) * units[part[-1]] for part in duration.split())


def stepped_lrs(scheduler, optimizer: torch.optim.Optimizer, count: int) -> list[float]:
    """The LR of each of `count` positions as training sees it: read, one optimizer step, one scheduler step."""
    seen = []
    for _ in range(count):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen
