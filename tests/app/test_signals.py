"""Signals reaching the real `seg fit` process (core.faults' SEG_SIGNAL_AT, at exact points): a validation is cut
short at its next batch and continued exactly; a second signal ends the process at once; what seg says and the exit
status agree (75)."""

from __future__ import annotations

import pytest
import torch

from segmentation.core.constants import PREEMPTED_EXIT
from segmentation.core.faults import SIGNAL_VARIABLE
from segmentation.training.preemption import MARKER

from ..helpers import only_run_dir, run_seg, scalars, seg_capturing, tiny_fit_args, weights

pytestmark = pytest.mark.slow
SETTINGS = ("--trainer.deterministic=true", "--trainer.max_epochs=2")  # 2 steps, 2 validation cases an epoch


def test_sigterm_in_validation_stops_at_the_next_batch_and_the_same_command_continues_bitwise(demo_root, tmp_path):
    args = tiny_fit_args(demo_root, *SETTINGS)
    stopped = run_seg(*args, cwd=tmp_path, env={SIGNAL_VARIABLE: "SIGTERM:val1"}, timeout=300)
    assert stopped.returncode == PREEMPTED_EXIT, stopped.stderr[-3000:]
    run = only_run_dir(tmp_path / "lightning_logs")
    last = run / "checkpoints/last.ckpt"
    line = [line for line in stopped.stdout.splitlines() if line.startswith("seg: preempted")]
    assert line == [f"seg: preempted by SIGTERM during the validation of epoch 0 (1 of 2 batches validated); "
                    f"checkpoint of the epoch as trained, before its validation, written (continued, the run "
                    f"validates it again): {last.relative_to(tmp_path)}. Continue with: seg fit --ckpt_path "
                    f"{last.relative_to(tmp_path)} (exit status {PREEMPTED_EXIT})"]
    assert not (run / "checkpoints/epoch=0.ckpt").exists() and scalars(run, "val/dice") == []  # not validated
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2 and (run / MARKER).exists()

    resumed = seg_capturing(args, cwd=tmp_path)  # the same command again (in this process: imports paid once)
    assert resumed.returncode == 0
    assert "epoch 0 trained, its validation cut short; validating it again" in resumed.stdout
    (tmp_path / "whole").mkdir()
    assert seg_capturing(args, cwd=tmp_path / "whole").returncode == 0  # the same command, uninterrupted
    whole = only_run_dir(tmp_path / "whole/lightning_logs")
    final, expected = weights(last), weights(whole / "checkpoints/last.ckpt")
    assert all(torch.equal(final[k], expected[k]) for k in expected), "weights differ from the uninterrupted run"
    assert scalars(run, "val/dice") == scalars(whole, "val/dice") and len(scalars(run, "val/dice")) == 2


def test_two_ctrl_c_exit_at_once_with_the_status_seg_says(demo_root, tmp_path):
    """The first Ctrl-C checkpoints step 1; the second arrives once seg has said so (as a user's second press
    does): the process exits at once, with the status both lines name, and the checkpoint stays whole."""
    result = run_seg(*tiny_fit_args(demo_root, "--trainer.max_epochs=1"), cwd=tmp_path,
                     env={SIGNAL_VARIABLE: "SIGINT:1,SIGINT:exiting"}, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("seg: ")]
    assert lines[-2].startswith("seg: preempted by SIGINT after step 1 ") and lines[-2].endswith("(exit status 75)")
    assert lines[-1] == "seg: SIGINT again: exiting at once (exit status 75)"
    assert result.returncode == PREEMPTED_EXIT, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr
    last = only_run_dir(tmp_path / "lightning_logs") / "checkpoints/last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 1
