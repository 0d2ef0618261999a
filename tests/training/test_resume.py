"""Resume rules, each proven by real `seg fit` runs on tiny synthetic data.

Run A: an uninterrupted 4-epoch run. Run B: the same settings stopped after
2 epochs (max_steps), then resumed from `epoch=1.ckpt` with the checkpoint alone.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import torch

from ..helpers import REPO, copy_run, only_run_dir, scalars, tiny_fit_args, weights
from ..helpers import fit_tiny as fit
from ..helpers import resume_in_process as resume

EPOCHS = 4
STEPS_PER_EPOCH = 2  # 4 training cases, 2 per batch (tiny.yaml)
SCHEDULES = ["none", "reduce_on_plateau", "cosine", "onecycle", "polynomial"]


def lrs(run: Path) -> list[float]:
    events = scalars(run, "lr")
    steps = [step for step, _ in events]
    assert steps == sorted(set(steps)), f"duplicated or unordered LR events: {steps}"
    return [value for _, value in events]


def schedule_state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=False)["lr_schedulers"][0]


@pytest.fixture(scope="module")
def uninterrupted(demo_root, tmp_path_factory):
    """Run A for each schedule, made once per module: {schedule: run directory}."""
    cache: dict[str, Path] = {}

    def get(schedule: str) -> Path:
        if schedule not in cache:
            logs = tmp_path_factory.mktemp(f"A_{schedule}")
            extra = ["--model.schedule.plateau_patience=1"] if schedule == "reduce_on_plateau" else []
            cache[schedule] = fit(demo_root, logs, f"--model.scheduler={schedule}",
                                  f"--trainer.max_epochs={EPOCHS}", *extra)
        return cache[schedule]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_exact_continuation(schedule, demo_root, tmp_path, uninterrupted, capsys):
    run_a = uninterrupted(schedule)
    extra = ["--model.schedule.plateau_patience=1"] if schedule == "reduce_on_plateau" else []
    run_b = fit(demo_root, tmp_path, f"--model.scheduler={schedule}", f"--trainer.max_epochs={EPOCHS}",
                f"--trainer.max_steps={2 * STEPS_PER_EPOCH}", *extra)
    assert not (run_b / "checkpoints/epoch=2.ckpt").exists()
    out = resume(run_b / "checkpoints/epoch=1.ckpt", "--trainer.max_steps=-1", capsys=capsys)
    assert "Resuming from" in out and "epoch 1 done; continuing at epoch 2 of 4" in out
    assert lrs(run_b) == lrs(run_a) and len(lrs(run_a)) == EPOCHS
    for tag in ("val/dice", "train/loss"):  # one continuous curve: each epoch once, in order
        assert [step for step, _ in scalars(run_b, tag)] == [step for step, _ in scalars(run_a, tag)]
    final_a, final_b = weights(run_a / "checkpoints/last.ckpt"), weights(run_b / "checkpoints/last.ckpt")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), "weights differ from the uninterrupted run"
    assert sorted(p.name for p in run_b.glob("config*.yaml")) == ["config.resume1.yaml", "config.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["store", "gpu"])
def test_exact_continuation_from_the_store(cache, demo_root, tmp_path, capsys):
    """The store's patches are a function of (seed, epoch, volume): a resume trains on the same ones, bitwise."""
    run_a = fit(demo_root, tmp_path / "a", f"--data.cache={cache}", f"--trainer.max_epochs={EPOCHS}")
    run_b = fit(demo_root, tmp_path / "b", f"--data.cache={cache}", f"--trainer.max_epochs={EPOCHS}",
                f"--trainer.max_steps={2 * STEPS_PER_EPOCH}")
    resume(run_b / "checkpoints/epoch=1.ckpt", "--trainer.max_steps=-1", capsys=capsys)
    final_a, final_b = weights(run_a / "checkpoints/last.ckpt"), weights(run_b / "checkpoints/last.ckpt")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), "weights differ from the uninterrupted run"
    assert [v for _, v in scalars(run_b, "val/dice")] == [v for _, v in scalars(run_a, "val/dice")]


HORIZON_SCHEDULES = ["cosine", "onecycle", "polynomial"]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_extending_a_finished_run_keeps_training_at_a_decaying_lr(schedule, tmp_path, uninterrupted, capsys):
    """The seed's scenario: a finished 4-epoch run continued to 8. Every added epoch trains at a non-zero LR,
    none above the last trained epoch's, strictly decreasing for the horizon schedules."""
    run = copy_run(uninterrupted(schedule), tmp_path)
    before = schedule_state(run / "checkpoints/epoch=3.ckpt")
    out = resume(run / "checkpoints/epoch=3.ckpt", "--trainer.max_epochs=8", capsys=capsys)
    series = lrs(run)
    assert len(series) == 8 and "max_epochs 4 -> 8" in out
    added, last_trained = series[4:], series[3]
    assert all(lr > 0 for lr in added), series
    assert all(lr <= last_trained * (1 + 1e-9) for lr in added), f"LR jumped at the resume boundary: {series}"
    if schedule == "reduce_on_plateau":
        assert f"best {before['best']:.4g}, {before['num_bad_epochs']} bad epochs" in out
    elif schedule == "none":
        assert added == pytest.approx([last_trained] * 4)
    else:
        assert all(b < a for a, b in zip([last_trained, *added], added)), f"not strictly decreasing: {series}"
        assert f"re-planned from lr {last_trained:.3g} (epoch 3's, the last trained)" in out
        assert "--model.lr X would start a fresh decay from X instead" in out


def test_a_replanned_polynomial_ends_like_a_fresh_plan_of_the_remaining_epochs(tmp_path, uninterrupted, capsys):
    run = copy_run(uninterrupted("polynomial"), tmp_path)
    resume(run / "checkpoints/epoch=3.ckpt", "--trainer.max_epochs=8", capsys=capsys)
    series = lrs(run)
    # a fresh polynomial plan from epoch 3's LR over the N = 8 - 3 epochs from epoch 3 on (power 0.9)
    remaining = 8 - 3
    assert series[-1] == pytest.approx(series[3] * (1 / remaining) ** 0.9, rel=1e-5) and series[-1] > 0


def test_a_changed_cosine_floor_applies_from_the_first_resumed_epoch(tmp_path, uninterrupted, capsys):
    run = copy_run(uninterrupted("cosine"), tmp_path)
    cosine = lrs(run)
    for name in ("epoch=2.ckpt", "epoch=3.ckpt", "last.ckpt"):
        (run / "checkpoints" / name).unlink()
    out = resume(run / "checkpoints/epoch=1.ckpt", "--model.schedule.cosine_eta_min_factor=0.2", capsys=capsys)
    assert "cosine options changed" in out and "config model.schedule.cosine_eta_min_factor: 0.01 -> 0.2" in out
    resumed = [value for _, value in scalars(run, "lr")][-2:]  # epochs 2 and 3
    base, floor = cosine[0], cosine[0] * 0.2
    # from epoch 1's LR at epoch 1 to the new floor at epoch 4 (where a fresh 4-epoch plan reaches it)
    expected = [floor + (cosine[1] - floor) * (1 + math.cos(math.pi * t / 3)) / 2 for t in (1, 2)]
    assert resumed == pytest.approx(expected, rel=1e-6) and all(lr > floor for lr in resumed)
    assert resumed[0] < cosine[1] and base > cosine[1]


@pytest.mark.floors  # (repeated with the lowest Lightning and MONAI admitted)
def test_switching_none_to_plateau_keeps_the_optimizer_moments(tmp_path, uninterrupted, capsys):
    run_a = uninterrupted("none")
    run = copy_run(run_a, tmp_path)
    for name in ("epoch=2.ckpt", "epoch=3.ckpt", "last.ckpt"):
        (run / "checkpoints" / name).unlink()
    out = resume(run / "checkpoints/epoch=1.ckpt", "--model.scheduler=reduce_on_plateau",
                 "--trainer.max_epochs=3", capsys=capsys)
    assert "schedule switched from none to reduce_on_plateau" in out
    # plateau keeps the constant LR of `none` for these epochs, so with moments kept the weights are A's
    a, b = weights(run_a / "checkpoints/epoch=2.ckpt"), weights(run / "checkpoints/epoch=2.ckpt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = schedule_state(run / "checkpoints/epoch=2.ckpt")
    assert state["name"] == "reduce_on_plateau" and state["num_bad_epochs"] == 0 and "phases" not in state


def test_switching_cosine_to_plateau_starts_from_the_current_lr(tmp_path, uninterrupted, capsys):
    """Resumed from epoch=1.ckpt of a finished run: a branch (a new version), the finished run untouched."""
    run = copy_run(uninterrupted("cosine"), tmp_path)
    cosine = lrs(run)
    before = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    out = resume(run / "checkpoints/epoch=1.ckpt", "--model.scheduler=reduce_on_plateau", capsys=capsys)
    branch = run.parent / "version_1"
    assert "Branched: the run has a newer checkpoint" in out and f"into {branch}" in out
    assert (branch / "BRANCHED_FROM").read_text().strip() == str(run / "checkpoints/epoch=1.ckpt")
    assert lrs(run) == cosine and {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == before
    state = schedule_state(branch / "checkpoints/last.ckpt")
    assert state["name"] == "reduce_on_plateau" and not {"phases", "horizon", "T_max"} & set(state)
    assert lrs(branch) == pytest.approx([cosine[2], cosine[2]])  # the branch's epochs 2 and 3


def test_new_lr_on_resume_starts_a_fresh_decay(tmp_path, uninterrupted, capsys):
    run = copy_run(uninterrupted("cosine"), tmp_path)
    out = resume(run / "checkpoints/epoch=1.ckpt", "--model.lr=0.02", capsys=capsys)
    assert "lr re-based from 0.003 to 0.02 (--model.lr): a fresh decay from it" in out
    resumed = lrs(run.parent / "version_1")  # a branch: the finished run has newer checkpoints
    # from 0.02 at epoch 2 to 0.02 * 0.01 at epoch 4, where a fresh plan of this horizon reaches its floor
    assert resumed == pytest.approx([0.02, 0.02 * (0.01 + 0.99 * 0.5)])


@pytest.mark.floors  # (repeated with the lowest Lightning and MONAI admitted)
def test_checkpoint_only_resume_restores_data_settings_and_command_line_wins(demo_root, tmp_path, seg):
    result = seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=2", "--data.samples_per_volume=2",
                                "--model.schedule.plateau_patience=3"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run_dir(tmp_path / "lightning_logs")
    result = seg("fit", "--ckpt_path", str(run / "checkpoints/epoch=1.ckpt"), "--trainer.max_epochs=3",
                 "--data.batch_size=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert only_run_dir(tmp_path / "lightning_logs") == run  # same run directory, no new version
    resumed = (run / "config.resume1.yaml").read_text()
    assert "samples_per_volume: 2" in resumed and "batch_size: 4" in resumed and "- 16" in resumed
    assert "plateau_patience: 3" in resumed  # the nested schedule options came back from the checkpoint
    assert "config data.init_args.batch_size: 2 -> 4" in result.stdout
    assert (run / "checkpoints/epoch=2.ckpt").is_file()


def test_architecture_change_is_refused_before_any_step(demo_root, tmp_path, uninterrupted, seg):
    run = copy_run(uninterrupted("none"), tmp_path)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    result = seg("fit", "--ckpt_path", str(run / "checkpoints/last.ckpt"), "--model.architecture=segresnet",
                     "--trainer.max_epochs=6", cwd=tmp_path)
    assert result.returncode == 2
    assert "architecture: checkpoint 'unet', configured 'segresnet'" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_make_resume_continues_a_run_directory_with_a_new_schedule(tmp_path, uninterrupted, capsys):
    """`make resume RUN=... EPOCHS=... SCHEDULER=...` is `seg fit --ckpt_path RUN ...`; that command, in-process."""
    run = copy_run(uninterrupted("none"), tmp_path)
    variables = [f"RUN={run}", "EPOCHS=6", "SCHEDULER=reduce_on_plateau"]
    dry = subprocess.run(["make", "-s", "-n", "-C", str(REPO), "-o", ".installed", "resume", *variables],
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    command = dry.stdout.strip().splitlines()[-1]
    expected = f'-m segmentation fit --ckpt_path "{run}" --trainer.max_epochs 6 --model.scheduler reduce_on_plateau'
    assert command.endswith(expected), command
    out = resume(run, "--trainer.max_epochs", "6", "--model.scheduler", "reduce_on_plateau", capsys=capsys)
    assert "epoch 3 done; continuing at epoch 4 of 6" in out
    assert "schedule switched from none to reduce_on_plateau" in out
    assert {"epoch=4.ckpt", "epoch=5.ckpt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    usage = subprocess.run(["make", "-s", "-C", str(REPO), "-o", ".installed", "resume"], capture_output=True,
                           text=True, timeout=60)
    assert usage.returncode != 0 and "usage: make resume RUN=" in usage.stdout


def test_resume_on_a_dataset_with_other_classes_is_refused(tmp_path, uninterrupted, seg):
    run = copy_run(uninterrupted("none"), tmp_path)
    assert seg("synth", "msd", "--out", "liver", "--cases", "3", "--shape", "16", "16", "16",
               cwd=tmp_path).returncode == 0
    result = seg("fit", "--ckpt_path", str(run / "checkpoints/last.ckpt"), f"--data.root={tmp_path / 'liver'}",
                     "--trainer.max_epochs=6", cwd=tmp_path)
    assert result.returncode == 2
    assert "class_names: checkpoint ['organ', 'lesion'], configured ['liver', 'cancer']" in result.stderr
    assert not (run / "checkpoints/epoch=4.ckpt").exists()


def test_a_config_given_again_does_not_move_the_horizon(finished_run, demo_root, tmp_path, seg):
    """The run was started with `--trainer.max_epochs=3` on the command line; its configs say 2 (tiny.yaml)."""
    run = copy_run(finished_run, tmp_path)
    result = seg(*tiny_fit_args(demo_root, "--ckpt_path=last"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max_epochs: the run's 3 is kept (the config says 2)" in result.stdout
    assert "max_epochs 3 ->" not in result.stdout and not (run / "checkpoints/epoch=3.ckpt").exists()
    result = seg(*tiny_fit_args(demo_root, "--ckpt_path=last", "--trainer.max_epochs", "4"), cwd=tmp_path)
    assert result.returncode == 0 and "max_epochs 3 -> 4" in result.stdout
    assert (run / "checkpoints/epoch=3.ckpt").is_file()


@pytest.mark.slow
def test_a_compiled_run_resumes_uncompiled_and_the_reverse(finished_run, tmp_path, capsys, monkeypatch):
    """`--model.compile` compiles the network in place: checkpoint keys stay plain either way. (Compiled with
    torch's `aot_eager` backend: the same compile wrapper and state-dict names as Inductor, without 20 s of C++.)"""
    original = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kwargs: original(self, **{**kwargs, "backend": "aot_eager"}))
    run = copy_run(finished_run, tmp_path)
    resume(run / "checkpoints/epoch=2.ckpt", "--trainer.max_epochs=4", "--model.compile=true", capsys=capsys)
    compiled = weights(run / "checkpoints/epoch=3.ckpt")
    assert set(compiled) == set(weights(run / "checkpoints/epoch=2.ckpt"))  # no `_orig_mod.` prefix
    resume(run / "checkpoints/epoch=3.ckpt", "--trainer.max_epochs=5", "--model.compile=false", capsys=capsys)
    assert not all(torch.equal(compiled[k], weights(run / "checkpoints/epoch=4.ckpt")[k]) for k in compiled)
