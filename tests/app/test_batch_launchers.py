"""The batch launchers' own logic, without running anything: the SLURM array script, the per-run slots of
`--launcher local`, the state file's concurrent writes, the requeue cap and what `--status` says of each run."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import pytest

from segmentation.app.batch_options import parse
from segmentation.app.batch_run import PREEMPTED_STATUS
from segmentation.app.batch_state import BatchState, gave_up
from segmentation.app.batch_status import last_error, where_it_stands
from segmentation.app.launchers import local, slurm
from segmentation.app.signal_relay import SignalRelay

from ..helpers import DEMO_CONFIG

pytestmark = pytest.mark.unit


def slurm_args(*words: str) -> argparse.Namespace:
    return parse(["--config", str(DEMO_CONFIG), "--launcher", "slurm", "--name", "b1", *words], "seg batch")


def test_the_array_script_requeues_signals_the_task_and_runs_its_batch_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    template = tmp_path / "site.sbatch"
    template.write_text("#!/bin/bash\n# our cluster\n#SBATCH --qos=long\nmodule load cuda\n"
                        "source ~/venv/bin/activate\n")
    script = slurm.array_script(slurm_args("--max-parallel", "2", "--partition", "gpu", "--time", "24:00:00",
                                           "--signal-seconds", "120", "--sbatch=--constraint=a100",
                                           "--template", str(template), "--max-requeues", "5"), [0, 2, 3])
    lines = script.splitlines()
    directives = [line for line in lines if line.startswith("#SBATCH")]
    for wanted in ("--array=0,2-3%2", "--requeue", "--signal=B:USR1@120", "--partition=gpu", "--time=24:00:00",
                   "--gres=gpu:1", "--ntasks-per-node=1", "--open-mode=append", "--job-name=seg-b1"):
        assert f"#SBATCH {wanted}" in directives, (wanted, script)
    # --sbatch and the template's #SBATCH lines come after seg's (sbatch: the later line wins)
    assert directives[-2:] == ["#SBATCH --constraint=a100", "#SBATCH --qos=long"]
    output = next(line for line in directives if "--output=" in line)
    assert output.endswith(f"{tmp_path}/lightning_logs/batches/b1/slurm/%A_%a.out")
    # the template's shell lines run after every #SBATCH line (sbatch stops reading them at the first command)
    assert lines.index("module load cuda") > lines.index(directives[-1])
    assert lines[-2] == f"cd {tmp_path}" and lines[-1].startswith("exec ")
    assert lines[-1].endswith(f"batch-task {tmp_path}/lightning_logs/batches/b1 --max-requeues=5")
    assert "# our cluster" not in script


def test_a_cpu_partition_asks_for_no_gpu_and_ddp_starts_one_process_per_device(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cpu = slurm.array_script(slurm_args("--gres", "none"), [0])
    assert "--gres" not in cpu and "--srun" not in cpu
    ddp = slurm.array_script(slurm_args("--gpus", "2"), [0])
    assert "#SBATCH --ntasks-per-node=2" in ddp and "#SBATCH --gres=gpu:2" in ddp and ddp.rstrip().endswith("--srun")


def test_task_indices_are_written_as_ranges():
    assert slurm.index_ranges([3, 0, 1, 2, 5, 7, 8]) == "0-3,5,7-8" and slurm.index_ranges([4]) == "4"


def test_the_processes_per_node_are_the_last_line_that_sets_them():
    assert slurm.ntasks_per_node(["#SBATCH --ntasks-per-node=2", "#SBATCH --mem=8G"]) == 2
    assert slurm.ntasks_per_node(["#SBATCH --ntasks-per-node=2", "#SBATCH --ntasks 4"]) == 4
    assert slurm.ntasks_per_node(["#SBATCH -n 3", "#SBATCH --ntasks-per-node=1"]) == 1
    assert slurm.ntasks_per_node(["#SBATCH --time=1:00:00"]) == 1


def test_local_slots_share_the_cpu_threads_or_give_each_run_its_own_gpus(monkeypatch):
    monkeypatch.setattr(local, "visible_gpus", lambda: [])
    monkeypatch.setattr(local.os, "cpu_count", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert local.slot_environments(4, 1) == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a thread count set already is shared, not exceeded
    assert local.slot_environments(2, 1)[0]["OMP_NUM_THREADS"] == "1"
    assert local.slot_environments(3, 1)[0]["OMP_NUM_THREADS"] == "1"  # never 0
    monkeypatch.setattr(local, "visible_gpus", lambda: ["0", "1", "2", "3", "5"])
    assert [s["CUDA_VISIBLE_DEVICES"] for s in local.slot_environments(2, 2)] == ["0,1", "2,3"]
    assert local.default_parallel(2) == 2 and local.default_parallel(1) == 5
    with pytest.raises(Exception, match=r"--parallel 3 x --gpus 2: 6 GPUs wanted, 5 visible"):
        local.slot_environments(3, 2)


def test_runs_written_at_once_from_many_threads_all_land_in_the_state(tmp_path):
    def write(prefix: str) -> None:
        state = BatchState(tmp_path)
        for i in range(20):
            state.update(f"{prefix}{i}", status="running", epochs=i)

    writers = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    runs = BatchState(tmp_path).runs
    assert len(runs) == 80 and runs["c7"] == {"status": "running", "epochs": 7}


def test_a_run_failing_again_and_again_at_the_same_epoch_is_given_up():
    assert not gave_up({"failed_at_epochs": [3, 3, 3]}, max_requeues=3)
    assert gave_up({"failed_at_epochs": [1, 3, 3, 3, 3]}, max_requeues=3)
    assert not gave_up({"failed_at_epochs": [3, 3, 4, 3]}, max_requeues=3)  # it moved on in between
    assert gave_up({"failed_at_epochs": [0]}, max_requeues=0)


@pytest.mark.parametrize("saved, queue, stands, note", [
    ({"status": "ok"}, {}, "finished", ""),
    ({"status": "pending", "slurm_job": "7_1"}, {"7_1": "PENDING"}, "pending", "SLURM 7_1 pending"),
    ({"status": "running", "slurm_job": "7_1"}, {"7_1": "RUNNING"}, "running", "SLURM 7_1 running"),
    ({"status": PREEMPTED_STATUS, "slurm_job": "7_1"}, {"7_1": "PENDING"}, "requeued", "SLURM 7_1 pending"),
    ({"status": PREEMPTED_STATUS}, {}, "preempted", "the batch command again continues it"),
    ({"status": "preempted 4 times: not requeued (--max-requeues 3); x"}, {}, "stopped", "not requeued"),
    ({"status": "running", "slurm_job": "7_1"}, {}, "stopped", "no process or task runs it now"),
    ({"status": "failed (exit 1, log x)"}, {}, "failed", "seg: error: --data.root x: no such folder"),
    ({"status": "failed (exit 1, log x)", "failed_at_epochs": [2, 2]}, {}, "gave up", "failed 2 times at epoch 2"),
    ({"status": "failed (exit 1, log x)", "failed_at_epochs": [2, 2], "max_requeues": 3}, {}, "failed", "seg: error"),
])
def test_status_says_where_each_run_stands(saved, queue, stands, note, tmp_path):
    (tmp_path / "r.log").write_text("Epoch 2\nseg: error: --data.root x: no such folder\nbye\n")
    where, said = where_it_stands("r", saved, queue, tmp_path, max_requeues=1)
    assert where == stands and note in said, (where, said)


def test_the_last_error_line_of_a_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("ok\nRuntimeError: CUDA out of memory\nexiting\n")
    assert last_error(log) == "RuntimeError: CUDA out of memory"
    log.write_text("ok\nkilled\n")
    assert last_error(log) == "killed" and last_error(Path(tmp_path / "none.log")).startswith("no log")


class FakeRun:
    """A child process's stand-in: records the signals sent to it."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def poll(self):
        return None

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)


def test_the_relay_holds_sigusr1_back_from_a_run_still_starting_and_passes_sigterm_at_once():
    relay = SignalRelay(translate=lambda s: signal.SIGTERM if s == signal.SIGUSR1 else s)
    starting, training = FakeRun(), FakeRun()
    relay.add(starting), relay.add(training), relay.ready(training)
    relay.relay(signal.SIGUSR1, None)
    assert starting.signals == [] and training.signals == [signal.SIGTERM]  # (translated)
    relay.ready(starting)
    relay.ready(training)  # (ready twice: no second signal)
    assert starting.signals == [signal.SIGTERM] and training.signals == [signal.SIGTERM]
    later = FakeRun()
    relay.add(later)  # started after the signal: gets it once ready
    assert later.signals == []
    relay.ready(later)
    assert later.signals == [signal.SIGTERM]
    plain = SignalRelay()
    stopping = FakeRun()
    plain.add(stopping)
    plain.relay(signal.SIGTERM, None)
    assert stopping.signals == [signal.SIGTERM]
