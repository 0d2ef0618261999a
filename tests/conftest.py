"""Shared fixtures: the synthetic demo task, one finished tiny run for the whole session, in-process `seg`, the
one-node SLURM cluster."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Iterator

import lightning.pytorch  # (imported at collection: its log handlers must not bind to one test's capture)
import pytest
import torch

from segmentation.data.synthetic import write

from .helpers import Mounts, Result, only_run_dir, seg_in_process, tiny_fit_args
from .slurm.node import slurm_node

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Six 32^3 synthetic cases in the MSD layout (4 train, 2 validation)."""
    return write("demo", tmp_path_factory.mktemp("demo"), cases=6, shape=(32, 32, 32), seed=0)


@pytest.fixture(scope="session")
def finished_run(demo_root, tmp_path_factory) -> Path:
    """A finished 3-epoch tiny run (in-process), shared read-only: copy it (`helpers.copy_run`) to change it."""
    work = tmp_path_factory.mktemp("finished")
    assert seg_in_process(tiny_fit_args(demo_root, "--trainer.max_epochs=3"), cwd=work) == 0
    return only_run_dir(work / "lightning_logs")


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    """The tests' one-node SLURM cluster (tests/slurm/start_node.sh), stopped after its last user in any worker;
    the test is skipped, with the reason, where SLURM cannot run."""
    with slurm_node() as cannot:
        if cannot:
            pytest.skip(f"SLURM cannot run on this machine: {cannot}")
        yield


@pytest.fixture()
def seg(capsys, caplog):
    """`seg(*args, cwd=...)`: the `seg` command in-process; returns a `Result` with stdout, stderr and the log."""
    caplog.set_level(logging.INFO)
    # seg's own lines reach caplog through the root logger (the `seg` logger propagates); Lightning's loggers do
    # not propagate when Lightning was imported outside a test, as here: listen on them directly, for the
    # messages Lightning itself prints (e.g. its precision announcement)
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS if not logging.getLogger(name).propagate]
    for logger in loggers:
        logger.addHandler(caplog.handler)

    def run(*args: str, cwd: Path | None = None) -> Result:
        capsys.readouterr()
        caplog.clear()
        code = seg_in_process(list(args), cwd=cwd)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err, caplog.text)

    yield run
    for logger in loggers:
        logger.removeHandler(caplog.handler)


@pytest.fixture()
def fresh_compile_caches():
    """torch's compile caches emptied before and after the test: compiled code is cached per function, and other
    tests' entries count against its recompile limit (past it, torch silently runs the function uncompiled)."""
    torch.compiler.reset()
    yield
    torch.compiler.reset()


@pytest.fixture(autouse=True)
def gradients_stay_on():
    """A test that leaves gradients off process-wide (a MONAI bundle's `initialize` does) fails itself, not a
    later test that trains in the same worker."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("the test left gradients disabled process-wide (torch.set_grad_enabled(False))")


@pytest.fixture(autouse=True)
def unit_tier_guard(request, monkeypatch):
    """A test marked `unit` builds no Trainer and starts no process (those make the end-to-end tier): both raise."""
    if request.node.get_closest_marker("unit") is None:
        return
    assert not {"finished_run", "seg"} & set(request.fixturenames), "a test marked unit must not run seg"

    def refused(what: str):
        def refuse(*args, **kwargs):
            raise AssertionError(f"a test marked unit must not {what}: it belongs to the end-to-end tier")
        return refuse

    monkeypatch.setattr(subprocess.Popen, "__init__", refused("start a process"))
    monkeypatch.setattr(lightning.pytorch.Trainer, "__init__", refused("build a Trainer"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped, with the reason said, where no CUDA device is visible."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run it where one is visible)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # (a parameter id "gpu" is a keyword too)
            item.add_marker(skip)


@pytest.fixture()
def mounts(tmp_path):
    """`Mounts` for read-only and full file systems, unmounted after the test; skipped where mounting is refused."""
    found = Mounts()
    probe = tmp_path / "mount-probe"
    try:
        found.small_disk(probe, "1m")
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        pytest.skip(f"needs permission to mount (root, as on the CI machine): {getattr(err, 'stderr', err)}")
    found.release()
    yield found
    found.release()
