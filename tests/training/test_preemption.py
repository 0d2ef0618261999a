"""Preemption: a signal at an exact step (core.faults' SEG_SIGNAL_AT) checkpoints that step and exits 75; the
resumed run continues inside the epoch and ends bitwise where the uninterrupted run ends."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from segmentation.core.faults import SIGNAL_VARIABLE
from segmentation.training.preemption import MARKER, PREEMPTED_EXIT, preempted_checkpoint, requeue_slurm_job

from ..helpers import DETERMINISTIC, only_run_dir, run_seg, scalars, seg_in_process, tiny_fit_args, values, weights
from ..helpers import fit_tiny as fit
from ..helpers import resume_in_process as resume

EPOCHS = 4
STEPS_PER_EPOCH = 2  # 4 training cases, 2 per batch (tiny.yaml)


def fit_signalled(root: Path, logs: Path, signal_at: str, *overrides: str, capsys=None) -> tuple[int, str]:
    """A tiny in-process `seg fit` that receives `signal_at` (`SIGTERM:3`; "" none); its exit status and output."""
    os.environ[SIGNAL_VARIABLE] = signal_at
    try:
        code = seg_in_process(tiny_fit_args(root, f"--trainer.default_root_dir={logs}", *DETERMINISTIC, *overrides))
    finally:
        del os.environ[SIGNAL_VARIABLE]
    return code, capsys.readouterr().out if capsys else ""


STEP = STEPS_PER_EPOCH + 1  # the first batch of epoch 1


@pytest.fixture(scope="module")
def uninterrupted(demo_root, tmp_path_factory) -> Path:
    """The run the interrupted ones must end equal to (the store's patches: exact inside an epoch too)."""
    return fit(demo_root, tmp_path_factory.mktemp("a"), "--data.cache=store", f"--trainer.max_epochs={EPOCHS}")


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1", "SIGINT"])
def test_a_signal_mid_epoch_checkpoints_that_step_and_the_resume_ends_bitwise_equal(signal_name, demo_root, tmp_path,
                                                                                    uninterrupted, capsys):
    step, run_a = STEP, uninterrupted
    code, out = fit_signalled(demo_root, tmp_path / "b", f"{signal_name}:{step}", "--data.cache=store",
                              f"--trainer.max_epochs={EPOCHS}", capsys=capsys)
    assert code == PREEMPTED_EXIT
    run_b = next((tmp_path / "b/lightning_logs").glob("*/version_0"))
    last = run_b / "checkpoints/last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == step and saved["epoch"] == 1
    assert saved["MSDDataModule"]["position"] == {"epoch": 1, "batches": 1, "consumed": 2, "world_size": 1}
    assert f"seg: preempted by {signal_name} after step {step} (1 of {STEPS_PER_EPOCH} batches of epoch 1" in out
    assert not (run_b / "checkpoints/epoch=1.ckpt").exists()  # the interrupted epoch is no finished epoch
    assert (run_b / MARKER).read_text().splitlines() == [str(last), signal_name]
    if signal_name == "SIGTERM":
        out = resume(last, capsys=capsys)
        assert f"Resuming from {last} (inside epoch 1 after 1 of its batches; continuing with the next batch" in out
    else:  # the same command again, as a requeued SLURM job runs it: it continues the preempted run
        code, out = fit_signalled(demo_root, tmp_path / "b", "", "--data.cache=store", f"--trainer.max_epochs={EPOCHS}",
                                  capsys=capsys)
        assert code == 0 and f"continuing the preempted run {run_b}" in out
        assert only_run_dir(tmp_path / "b/lightning_logs") == run_b
    assert not (run_b / MARKER).exists()  # finished: a further re-run starts a new run
    final_a, final_b = weights(run_a / "checkpoints/last.ckpt"), weights(last)
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), "weights differ from the uninterrupted run"
    assert [v for _, v in scalars(run_b, "val/dice")] == [v for _, v in scalars(run_a, "val/dice")]


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["none", "memory"])
def test_monai_pipelines_also_resume_bitwise_after_a_mid_epoch_stop(cache, demo_root, tmp_path, capsys):
    """Every random choice of an item is a function of (seed, epoch, index) in every cache mode, not only the
    store's: the resumed run draws exactly the crops, flips and intensity changes of the uninterrupted one."""
    settings = (f"--data.cache={cache}", f"--trainer.max_epochs={EPOCHS}")
    whole = fit(demo_root, tmp_path / "a", *settings)
    code, _ = fit_signalled(demo_root, tmp_path / "b", f"SIGTERM:{STEP}", *settings, capsys=capsys)
    assert code == PREEMPTED_EXIT
    run = only_run_dir(tmp_path / "b/lightning_logs")
    resume(run / "checkpoints/last.ckpt", capsys=capsys)
    final_a, final_b = weights(whole / "checkpoints/last.ckpt"), weights(run / "checkpoints/last.ckpt")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), "weights differ from the uninterrupted run"
    assert [v for _, v in scalars(run, "val/dice")] == [v for _, v in scalars(whole, "val/dice")]


@pytest.mark.slow
def test_a_different_command_does_not_continue_a_preempted_run(demo_root, tmp_path, capsys):
    settings = ("--data.cache=store", f"--trainer.max_epochs={EPOCHS}")
    code, _ = fit_signalled(demo_root, tmp_path, f"SIGTERM:{STEP}", *settings, capsys=capsys)
    assert code == PREEMPTED_EXIT
    preempted = only_run_dir(tmp_path / "lightning_logs")
    code, out = fit_signalled(demo_root, tmp_path, "", *settings, "--model.lr=0.05", "--trainer.max_epochs=1",
                              capsys=capsys)
    assert code == 0 and f"not continuing the preempted run {preempted}: this command differs" in out
    assert "model.lr: 0.003 -> 0.05" in out and (preempted / MARKER).exists()  # left for the command that made it
    assert (preempted.parent / "version_1" / "checkpoints/epoch=0.ckpt").is_file()


@pytest.mark.slow
def test_a_signal_in_an_epochs_last_step_stops_before_its_validation_which_the_continued_run_does_again(
        demo_root, tmp_path, uninterrupted, capsys):
    code, out = fit_signalled(demo_root, tmp_path, f"SIGTERM:{STEPS_PER_EPOCH}", "--data.cache=store",
                              f"--trainer.max_epochs={EPOCHS}", capsys=capsys)
    assert code == PREEMPTED_EXIT
    assert "preempted by SIGTERM during the validation of epoch 0 (0 of 2 batches validated)" in out
    run = only_run_dir(tmp_path / "lightning_logs")
    assert not (run / "checkpoints/epoch=0.ckpt").exists() and values(run, "val/dice") == []
    saved = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == STEPS_PER_EPOCH and saved["epoch"] == 0  # the trained epoch, before validating
    code, out = fit_signalled(demo_root, tmp_path, "", "--data.cache=store", f"--trainer.max_epochs={EPOCHS}",
                              capsys=capsys)  # the same command again
    assert code == 0 and "epoch 0 trained, its validation cut short; validating it again, then continuing" in out
    final_a, final_b = weights(uninterrupted / "checkpoints/last.ckpt"), weights(run / "checkpoints/last.ckpt")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a), "weights differ from the uninterrupted run"
    assert scalars(run, "val/dice") == scalars(uninterrupted, "val/dice")  # epoch 0 validated once, as uninterrupted
    assert (run / "checkpoints/epoch=0.ckpt").is_file()


@pytest.mark.slow
def test_a_further_signal_while_stopping_stops_at_once_keeping_the_last_whole_checkpoint(demo_root, tmp_path, capsys):
    """SIGTERM at step 3, a second SIGTERM as its stop begins: no checkpoint of step 3; epoch 0's stays whole and
    is the one the same command continues from."""
    code, out = fit_signalled(demo_root, tmp_path, f"SIGTERM:{STEP},SIGTERM:stopping", "--data.cache=store",
                              f"--trainer.max_epochs={EPOCHS}", capsys=capsys)
    run = only_run_dir(tmp_path / "lightning_logs")
    last = run / "checkpoints/last.ckpt"
    assert code == PREEMPTED_EXIT and "seg: preempted by" not in out
    assert (f"seg: SIGTERM while stopping: stopped at once, without a checkpoint of this moment; the same command "
            f"continues from the run's last whole checkpoint {last} (exit status {PREEMPTED_EXIT})") in out
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == STEPS_PER_EPOCH
    assert preempted_checkpoint(run.parent) == last and (run / MARKER).read_text().splitlines()[1] == "SIGTERM"
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp-" in p.name]


def test_a_requeue_without_scontrol_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "not requeued: scontrol is not on PATH" in requeue_slurm_job("123")


def test_a_requeue_calls_scontrol_with_the_job(monkeypatch, tmp_path):
    record = tmp_path / "called"
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" > {record}\n")
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert requeue_slurm_job("4242") == "seg: SLURM job 4242 requeued; it continues this run when it starts again"
    assert record.read_text().split() == ["requeue", "4242"]
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    requeue_slurm_job("4242")
    assert record.read_text().split() == ["requeue", "77_3"]


@pytest.mark.slow
def test_a_signal_before_training_stops_at_once_with_status_75(demo_root, tmp_path):
    result = run_seg(*tiny_fit_args(demo_root), cwd=tmp_path, env={SIGNAL_VARIABLE: "SIGTERM:0"}, timeout=300)
    assert result.returncode == PREEMPTED_EXIT, result.stderr[-3000:]
    assert "seg: preempted by SIGTERM before training started: nothing trained to save" in result.stdout
    run = only_run_dir(tmp_path / "lightning_logs")
    assert not list(run.glob("checkpoints/*.ckpt")) and not (run / MARKER).exists()
