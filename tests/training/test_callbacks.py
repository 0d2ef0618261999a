"""Training-time callbacks, proven by real `seg fit` runs (in-process) and their TensorBoard event files:
epoch time and whole-run ETA, image previews, early stopping across a resume."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segmentation.data.synthetic import write

from ..helpers import only_run_dir, scalars, seconds, seg_capturing, tiny_fit_args

SHAPE = (40, 32, 24)  # X, Y, Z (RAS after preprocessing): every plane has its own size
ETA_LINE = re.compile(
    r"^epoch (\d+)/(\d+) · (\d+\.\d) s/epoch · (?:(.+) left|stopping)(?: · val/dice (\d\.\d{4}))?$"
)
PLANES = {"axial": (SHAPE[1], SHAPE[0]), "coronal": (SHAPE[2], SHAPE[0]), "sagittal": (SHAPE[2], SHAPE[1])}


def eta_lines(stdout: str) -> list[tuple[int, int, float, str, str]]:
    """(i, N, seconds per epoch, time left or None when stopping, val/dice) of each printed ETA line."""
    return [m.groups() for m in map(ETA_LINE.match, stdout.splitlines()) if m]


@pytest.fixture(scope="module")
def shaped_root(tmp_path_factory) -> Path:
    """Three 40x32x24 synthetic cases: two for training, one for validation (tiny.yaml's split)."""
    return write("demo", tmp_path_factory.mktemp("shaped"), cases=3, shape=SHAPE, seed=0)


@pytest.fixture(scope="module")
def previewed(shaped_root, tmp_path_factory):
    """A 3-epoch run with --preview_every_n_epochs 2: (run directory, stdout)."""
    work = tmp_path_factory.mktemp("previewed")
    result = seg_capturing(tiny_fit_args(shaped_root, "--trainer.max_epochs=3", "--preview_every_n_epochs=2"), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(work / "lightning_logs"), result.stdout


def test_epoch_seconds_logged_once_per_epoch(previewed):
    run, stdout = previewed
    logged = scalars(run, "time/epoch_seconds")
    assert len(logged) == 3 and all(value > 0 for _, value in logged)
    assert [step for step, _ in logged] == [step for step, _ in scalars(run, "val/dice")]  # same x axis, per epoch
    wall = float(re.search(r"wall time ([\d.]+) s", stdout).group(1))
    assert sum(value for _, value in logged) <= wall


def test_eta_line_per_epoch_with_a_decreasing_time_left(previewed):
    run, stdout = previewed
    lines = eta_lines(stdout)
    assert [(int(i), int(n)) for i, n, *_ in lines] == [(1, 3), (2, 3), (3, 3)], stdout
    logged = [value for _, value in scalars(run, "time/epoch_seconds")]
    lefts = []
    for index, (i, n, per_epoch, left, dice) in enumerate(lines):
        mean = sum(logged[: index + 1]) / (index + 1)  # this process's epochs so far
        assert float(per_epoch) == pytest.approx(mean, abs=0.051)
        lefts.append(seconds(left))
        rounding = 0.051 if lefts[-1] < 10 else 0.51  # shown to 0.1 s under 10 s, else to 1 s
        assert abs(lefts[-1] - (int(n) - int(i)) * mean) <= rounding  # remaining epochs x mean
        assert 0.0 <= float(dice) <= 1.0
    assert lefts[-1] == 0 and lefts[0] > lefts[-1]
    dice = [value for _, value in scalars(run, "val/dice")]
    assert [float(d) for *_, d in lines] == pytest.approx(dice, abs=5e-5)


def test_previews_three_planes_with_image_truth_and_prediction_panels(previewed):
    run, _ = previewed
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert {f"preview/{plane}" for plane in PLANES} <= set(events.Tags()["images"])
    dice_steps = [step for step, _ in scalars(run, "val/dice")]
    for plane, (height, width) in PLANES.items():
        images = events.Images(f"preview/{plane}")
        # every 2 epochs (the 2nd) and after the last (the 3rd), at the steps of those epochs' val/dice
        assert [image.step for image in images] == dice_steps[1:], plane
        for image in images:
            picture = Image.open(io.BytesIO(image.encoded_image_string))
            assert picture.format == "PNG" and picture.mode == "RGB"
            assert picture.size == (image.width, image.height) == (3 * width + 2 * 2, height), plane
            pixels = torch.tensor(list(picture.getdata())).reshape(height, 3 * width + 4, 3)
            image_panel, truth_panel = pixels[:, :width], pixels[:, width + 2: 2 * width + 2]
            assert (image_panel == image_panel[..., :1]).all()  # grey: R = G = B
            assert image_panel.max() > 200 and image_panel.min() < 50  # windowed to the 1st-99th percentile
            coloured = (truth_panel[..., 0] != truth_panel[..., 1]) | (truth_panel[..., 1] != truth_panel[..., 2])
            assert coloured.sum() > 10, f"{plane}: no ground truth drawn through the label's centre of mass"


def early_stopping_state(ckpt: Path) -> dict:
    states = torch.load(ckpt, map_location="cpu", weights_only=False)["callbacks"]
    return next(state for key, state in states.items() if key.startswith("SegEarlyStopping"))


def newer_than_epoch_1(run: Path) -> None:
    """Remove the checkpoints newer than epoch=1.ckpt."""
    for name in ("epoch=2.ckpt", "last.ckpt"):
        (run / "checkpoints" / name).unlink()


def test_early_stopping_stops_at_the_expected_epoch_and_survives_a_resume(shaped_root, tmp_path, seg):
    """With --model.lr 0 no Dice can improve after the first validation, so patience 2 stops after epoch 3."""
    (tmp_path / "a").mkdir()
    result = seg(*tiny_fit_args(shaped_root, "--trainer.max_epochs=6", "--early_stopping_patience=2",
                                    "--model.lr=0", "--model.scheduler=none", "--preview_every_n_epochs=0"),
                     cwd=tmp_path / "a")
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run_dir(tmp_path / "a/lightning_logs")
    dice = [value for _, value in scalars(run, "val/dice")]
    assert len(dice) == 3 and len(set(dice)) == 1, dice  # the premise: no improvement, ever
    names = {p.name for p in (run / "checkpoints").glob("epoch=*.ckpt")}
    assert names == {"epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt"}
    assert "early stopping after epoch 3: val/dice did not improve in 2 validation(s)" in result.stdout
    assert [(i, n, left) for i, n, _, left, _ in eta_lines(result.stdout)][-1] == ("3", "6", None)  # "stopping"
    assert [early_stopping_state(run / f"checkpoints/epoch={e}.ckpt")["wait_count"] for e in range(3)] == [0, 1, 2]
    assert not EventAccumulator(str(run)).Reload().Tags()["images"]  # --preview_every_n_epochs 0: no previews

    # Resumed from epoch=1.ckpt (one validation without improvement): it continues counting and stops
    # after epoch 3 again. A fresh count would run to epoch 5.
    same = shutil.copytree(run.parents[1], tmp_path / "b/lightning_logs") / run.relative_to(run.parents[1])
    newer_than_epoch_1(same)  # so the resume continues this run rather than branching
    result = seg("fit", f"--ckpt_path={same / 'checkpoints/epoch=1.ckpt'}", cwd=tmp_path / "b")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "early stopping: restored 1 validation(s) without a better val/dice" in result.stdout
    assert "early stopping after epoch 3" in result.stdout
    assert not (same / "checkpoints/epoch=3.ckpt").exists()
    assert [(i, n) for i, n, *_ in eta_lines(result.stdout)] == [("3", "6")]  # i from the resumed epoch

    # A patience given on resume wins over the checkpoint's (Lightning alone would restore 2): stops after epoch 4.
    more = shutil.copytree(run.parents[1], tmp_path / "c/lightning_logs") / run.relative_to(run.parents[1])
    newer_than_epoch_1(more)
    result = seg("fit", f"--ckpt_path={more / 'checkpoints/epoch=1.ckpt'}", "--early_stopping_patience=3",
                     "--trainer.max_epochs=8", cwd=tmp_path / "c")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "patience 3 (checkpoint: 2)" in result.stdout
    assert "early stopping after epoch 4: val/dice did not improve in 3 validation(s)" in result.stdout
    assert (more / "checkpoints/epoch=3.ckpt").exists() and not (more / "checkpoints/epoch=4.ckpt").exists()
    assert [(i, n) for i, n, *_ in eta_lines(result.stdout)] == [("3", "8"), ("4", "8")]  # N: the new max_epochs
    assert early_stopping_state(more / "checkpoints/epoch=3.ckpt")["wait_count"] == 3
