"""DDP with two CPU processes (gloo), through the real `seg` command: one set of files, replicas that agree,
validation that counts each case once, and a SIGTERM mid-epoch that a 2-process resume continues bitwise.

One uninterrupted 2-process run is shared by the module (3 epochs, 3 training volumes dealt to 2 ranks,
3 validation cases: an odd number, which a padding sampler would score one of twice).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from segmentation.core.faults import SIGNAL_VARIABLE
from segmentation.training.preemption import PREEMPTED_EXIT

from ..helpers import copy_run, only_run_dir, run_seg, seg_capturing, seg_in_process, tiny_fit_args, values, weights

pytestmark = pytest.mark.slow
EPOCHS = 3
STEPS_PER_EPOCH = 2  # 3 training volumes padded to 4, 2 per rank, 1 per batch
TWO_PROCESSES = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
                 "--trainer.deterministic=true", "--data.cache=store", "--data.init_args.batch_size=1",
                 "--data.init_args.val_fraction=0.5", f"--trainer.max_epochs={EPOCHS}"]


def fit_two_processes(root: Path, work: Path, env: dict | None = None):
    """`seg fit` on 2 CPU processes in `work`; the completed process."""
    work.mkdir(parents=True, exist_ok=True)
    return run_seg(*tiny_fit_args(root, *TWO_PROCESSES), cwd=work, env=env, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(demo_root, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ddp")
    result = fit_two_processes(demo_root, work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ranks: 2, weights and learning rate equal on all after each of {EPOCHS} epochs" in result.stdout
    return only_run_dir(work / "lightning_logs")


def test_two_processes_write_one_run(uninterrupted):
    written = sorted(p.name for p in (uninterrupted / "checkpoints").iterdir())
    assert written == ["best.ckpt", "epoch=0.ckpt", "epoch=1.ckpt", "epoch=2.ckpt", "last.ckpt"]
    assert sorted(p.name for p in uninterrupted.glob("config*.yaml")) == ["config.yaml"]
    assert len(values(uninterrupted, "lr")) == EPOCHS and len(values(uninterrupted, "val/dice")) == EPOCHS
    # (that one process validates the last checkpoint to the Dice the 2 processes logged, bit for bit: checked by
    # test_validate_test_and_predict_on_two_processes_give_the_one_process_results, on the same one-process validate)


def test_sigterm_mid_epoch_on_two_processes_resumes_to_the_same_weights(demo_root, uninterrupted, tmp_path):
    step = STEPS_PER_EPOCH + 1  # the first batch of epoch 1
    stopped = fit_two_processes(demo_root, tmp_path, env={SIGNAL_VARIABLE: f"SIGTERM:{step}"})
    assert stopped.returncode == PREEMPTED_EXIT, stopped.stderr[-3000:]
    assert f"seg: preempted by SIGTERM after step {step} (1 of {STEPS_PER_EPOCH} batches of epoch 1" in stopped.stdout
    run = only_run_dir(tmp_path / "lightning_logs")
    last = run / "checkpoints/last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == step
    resumed = run_seg("fit", f"--ckpt_path={last}", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final, expected = weights(last), weights(uninterrupted / "checkpoints/last.ckpt")
    assert all(torch.equal(final[k], expected[k]) for k in expected), "weights differ from the uninterrupted run"
    assert values(run, "lr") == values(uninterrupted, "lr")
    assert values(run, "val/dice") == values(uninterrupted, "val/dice")


def test_a_two_process_run_continues_on_one_process_and_a_one_process_run_on_two(uninterrupted, finished_run,
                                                                                 tmp_path, capsys):
    on_one = copy_run(uninterrupted, tmp_path / "one")
    assert seg_in_process(["fit", f"--ckpt_path={on_one / 'checkpoints/last.ckpt'}",
                           f"--trainer.max_epochs={EPOCHS + 1}", "--trainer.devices=1", "--trainer.strategy=auto"]) == 0
    assert "world size 2 -> 1 (each epoch's order is dealt out by rank" in capsys.readouterr().out
    assert len(values(on_one, "val/dice")) == EPOCHS + 1
    on_two = copy_run(finished_run, tmp_path / "two")
    result = run_seg("fit", f"--ckpt_path={on_two / 'checkpoints/last.ckpt'}", "--trainer.max_epochs=4",
                     "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
                     cwd=tmp_path / "two", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world size 1 -> 2" in result.stdout and "ranks: 2, weights and learning rate equal" in result.stdout
    assert len(values(on_two, "val/dice")) == 4


def test_validate_test_and_predict_on_two_processes_give_the_one_process_results(uninterrupted, tmp_path):
    """Each rank scores or writes its shard of the cases; what they add up to equals one process's work: the
    validation metrics to the last bit, the per-case test table (3 cases: uneven shards) and every label map."""
    run = copy_run(uninterrupted, tmp_path / "run")
    ckpt = f"--ckpt_path={run / 'checkpoints/last.ckpt'}"
    placements = {1: ["--trainer.devices=1", "--trainer.strategy=auto"], 2: []}  # 2: the run's own DDP settings
    results = {}
    for processes, placement in placements.items():
        for command, extra in (("validate", []), ("test", ["--data.test_on=val"]),
                               ("predict", [f"--prediction_dir={tmp_path / f'labels{processes}'}"])):
            args = [command, ckpt, *placement, *extra]
            # one process in this one (imports paid once); two: real processes, Lightning's DDP launcher
            done = seg_capturing(args, cwd=tmp_path) if processes == 1 else run_seg(*args, cwd=tmp_path, timeout=300)
            assert done.returncode == 0, (command, processes, done.stderr[-3000:])
        labels = sorted((tmp_path / f"labels{processes}").glob("*.nii.gz"))
        results[processes] = (json.loads((run / "validate/last.json").read_text()),
                              (run / "test/last.csv").read_text(), {p.name: p.read_bytes() for p in labels})
        assert f"wrote {len(labels)} label maps" in done.stdout
    # one process validates the checkpoint on the same 3 cases to the Dice the 2-process fit logged: the same float32
    assert results[1][0]["val/dice"] == values(uninterrupted, "val/dice")[-1]
    assert results[2][0] == results[1][0]  # val/dice, per class, val/loss
    assert results[2][1] == results[1][1] and results[1][1].count("\nval,") == 4  # 3 cases and the mean
    assert results[2][2] == results[1][2] and len(results[1][2]) == 6  # every case of the dataset, byte for byte
