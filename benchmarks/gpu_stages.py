"""The stages of the GPU check (`gpu_check.py` decides which run): each runs commands, logs them, reads figures.

seg runs from the working tree (`PYTHONPATH=<repo> python -m segmentation`), never from an installed copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from gpu_check import Outcome, Stage

ROOT = Path(__file__).resolve().parent.parent
CASES, SHAPE = 20, ("240", "240", "155")
ENVIRONMENT = r"""
import json, platform, shutil, subprocess, torch
from importlib.metadata import version
cuda = torch.cuda.is_available()
smi = shutil.which("nvidia-smi")
driver = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                        text=True).stdout.strip() if smi else None
print(json.dumps({"cuda_available": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
  "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
  "driver": driver, "cuda": torch.version.cuda, "torch": torch.__version__, "lightning": version("lightning"),
  "monai": version("monai"), "python": platform.python_version(),
  "c_compiler": next((shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c)), None)}))
"""


@dataclass
class Context:
    """What every stage shares: the output folder, the wheel folder, the data folder, the python, notes."""

    out: Path
    wheels: Optional[Path]
    data: Path
    workers: int
    python: str = sys.executable
    notes: list[str] = field(default_factory=list)
    run_dir: Optional[str] = None

    @classmethod
    def create(cls, out: Path, wheels: Optional[Path]) -> Context:
        """The context of a check into `out` (DATA and WORKERS from the environment, as gpu.sh always took them)."""
        data = Path(os.environ.get("DATA", "/tmp/seg-gpu-bench/brats"))
        return cls(out, wheels, data, int(os.environ.get("WORKERS", min(8, os.cpu_count() or 1))))

    def env(self) -> dict[str, str]:
        """The environment of every command: seg from the working tree."""
        return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


class MemoryPoller:
    """The peak of nvidia-smi's used memory (MiB, whole device) while a stage runs; nothing without nvidia-smi."""

    def __init__(self) -> None:
        self.peak: Optional[int] = None
        self._stop = threading.Event()
        self._smi = shutil.which("nvidia-smi")
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while self._smi and not self._stop.wait(0.5):
            found = subprocess.run([self._smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                   capture_output=True, text=True).stdout.split()
            if found and found[0].isdigit():
                self.peak = max(self.peak or 0, int(found[0]))

    def __enter__(self) -> MemoryPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def command(context: Context, name: str, args: list[str], timeout_s: float) -> tuple[int, str]:
    """Run `args` with output to OUT/logs/NAME.log; (exit status or 124 on timeout, stdout)."""
    log = context.out / "logs" / f"{name}.log"
    with open(log, "a") as stream:
        stream.write(f"$ {' '.join(args)}\n")
        stream.flush()
        try:
            done = subprocess.run(args, cwd=ROOT, env=context.env(), stdout=subprocess.PIPE, stderr=stream,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as expired:
            out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
            stream.write(out + f"\ntimed out after {timeout_s:.0f} s\n")
            return 124, out
        stream.write(done.stdout)
    return done.returncode, done.stdout


def seg(context: Context, *args: str) -> list[str]:
    """The command line of `seg ARGS` from the working tree."""
    return [context.python, "-m", "segmentation", *args]


def failed_or_ok(code: int, timeout_s: float, figures: dict[str, Any], name: str) -> Outcome:
    """ok for exit 0; otherwise failed, saying whether it timed out and where the log is."""
    if code == 0:
        return Outcome("ok", figures=figures)
    why = f"timed out after {timeout_s:.0f} s" if code == 124 else f"exit status {code}"
    return Outcome("failed", note=f"{why}; see logs/{name}.log", figures=figures)


def requirements(pyproject: str) -> list[str]:
    """The project's dependencies but torch (installed first, a CUDA or CPU build), plus pytest for `pytest -m gpu`."""
    block = pyproject.split("dependencies = [", 1)[1].split("]\n", 1)[0]
    found = re.findall(r'^\s*"([^"]+)"', block, flags=re.MULTILINE)
    return [req for req in found if re.split(r"[\[<>=!~ ]", req)[0] != "torch"] + ["pytest>=8"]


def module_of(requirement: str) -> str:
    """The import name of a requirement (`jsonargparse[signatures]>=4` -> `jsonargparse`)."""
    return re.split(r"[\[<>=!~ ]", requirement)[0].replace("-", "_")


def missing(context: Context, reqs: list[str], timeout_s: float) -> list[str]:
    """The requirements whose module does not import under this python."""
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))")
    code, out = command(context, "install", [context.python, "-c", probe, *map(module_of, reqs)], timeout_s)
    absent = set(json.loads(out.strip().splitlines()[-1])) if code == 0 else {module_of(r) for r in reqs}
    return [req for req in reqs if module_of(req) in absent]


def install(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """Nothing when everything imports; else `pip install --no-index --find-links WHEELS` of what is missing."""
    absent = missing(context, requirements((ROOT / "pyproject.toml").read_text()), timeout_s)
    if not absent:
        return Outcome("ok", note="nothing to install: the working tree imports")
    if context.wheels is None or not context.wheels.is_dir():
        return Outcome("failed", note=f"missing {', '.join(map(module_of, absent))} and no wheel folder")
    code, _ = command(context, stage.name, [context.python, "-m", "pip", "install", "--no-index", "--find-links",
                                            str(context.wheels), *absent], timeout_s)
    return failed_or_ok(code, timeout_s, {"installed": absent}, stage.name)


def environment(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """The environment report (JSON, also OUT/environment.json); `cuda_available` decides the GPU stages."""
    code, out = command(context, stage.name, [context.python, "-c", ENVIRONMENT], timeout_s)
    if code != 0:
        return failed_or_ok(code, timeout_s, {}, stage.name)
    report = json.loads(out.strip().splitlines()[-1])
    (context.out / "environment.json").write_text(json.dumps(report, indent=1) + "\n")
    if not report["cuda_available"]:
        context.notes.append("no CUDA device: the GPU stages are skipped (this run checks the script, not a GPU)")
    return Outcome("ok", figures=report)


def pytest_gpu(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """`pytest -m gpu` on the GPU tests of training and of `seg plan`'s memory; figures: passed / failed counts."""
    code, out = command(context, stage.name, [context.python, "-m", "pytest", "-m", "gpu", "-q", "-p",
                                              "no:cacheprovider", "tests/training/test_gpu.py",
                                              "tests/measure/test_plan_memory_gpu.py"], timeout_s)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", out)}
    return failed_or_ok(code, timeout_s, counts, stage.name)


def synth(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """BraTS-size cases written by parallel `seg synth` processes (parts renumbered into one folder); reused."""
    from gpu_data import merge_parts, split_cases

    if (context.data / ".complete").is_file():
        return Outcome("ok", note=f"reused {context.data}", figures={"cases": CASES})
    shutil.rmtree(context.data, ignore_errors=True)
    parts = split_cases(CASES, context.workers)
    log = open(context.out / "logs" / f"{stage.name}.log", "a")
    with log:
        processes = [subprocess.Popen(seg(context, "synth", "brats", "--out", str(context.data / f".part{k}"),
                                          "--cases", str(n), "--shape", *SHAPE, "--seed", str(k)),
                                      cwd=ROOT, env=context.env(), stdout=log, stderr=log)
                     for k, n in enumerate(parts)]
        deadline = time.monotonic() + timeout_s
        codes = [wait(process, deadline) for process in processes]
    if any(codes):
        return failed_or_ok(next(c for c in codes if c), timeout_s, {}, stage.name)
    merge_parts(context.data, len(parts))
    (context.data / ".complete").touch()
    return Outcome("ok", figures={"cases": CASES, "processes": len(parts)})


def wait(process: subprocess.Popen, deadline: float) -> int:
    """The exit status of `process`, or 124 after killing it at `deadline`."""
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return 124


def fit_figures(log_text: str) -> dict[str, Any]:
    """Run directory, epochs, wall time and last val/dice from seg fit's closing summary."""
    figures: dict[str, Any] = {}
    for pattern, key, kind in ((r"run: (\S+)", "run", str), (r"epochs: (\d+)", "epochs", int),
                               (r"wall time ([\d.]+) s", "wall_s", float), (r"last val/dice: ([\d.]+)",
                                                                              "last_val_dice", float)):
        found = re.findall(pattern, log_text)
        if found:
            figures[key] = kind(found[-1])
    return figures


def fit(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """seg fit on the synthetic BraTS cases (cache gpu, seg's CUDA defaults) for 2 epochs, or the resume to 3."""
    if stage.name == "fit":
        args = seg(context, "fit", "--config", "configs/brats.yaml", "--data.root", str(context.data),
                   "--data.cache", "gpu", "--data.num_workers", str(context.workers), "--trainer.max_epochs", "2",
                   "--trainer.default_root_dir", str(context.out / "fit"))
    else:
        args = seg(context, "fit", "--ckpt_path", str(context.run_dir), "--trainer.max_epochs", "3")
    code, _ = command(context, stage.name, args, timeout_s)
    figures = fit_figures((context.out / "logs" / f"{stage.name}.log").read_text())
    context.run_dir = figures.get("run", context.run_dir)
    if code == 0 and stage.name == "fit" and not context.run_dir:
        return Outcome("failed", note="no run directory in the log", figures=figures)
    return failed_or_ok(code, timeout_s, figures, stage.name)


def bench(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """seg bench --json for the stage's network (UNet eager / compiled, DynUNet); figures from its JSON."""
    architecture = "dynunet" if "dynunet" in stage.name else "unet"
    args = seg(context, "bench", "--config", "configs/brats.yaml", "--data.root", str(context.data),
               "--data.num_workers", str(context.workers), "--data.batch_size", "2", "--data.samples_per_volume",
               "2", "--steps", "10", "--json", "--model.architecture", architecture,
               "--model.compile", str(stage.name.endswith("compiled")).lower(),
               *([] if stage.name == "bench_unet" else ["--network-only"]))  # the data figures once, not thrice
    code, out = command(context, stage.name, args, timeout_s)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    figures = json.loads(lines[-1]) if lines else {}
    return failed_or_ok(code, timeout_s, figures, stage.name)


def plan(context: Context, stage: Stage, timeout_s: float) -> Outcome:
    """seg plan --json on the synthetic BraTS cases, DynUNet (the nnU-Net fragment), memory measured on the GPU;
    figures: the plan's patch, batch, stages, step bytes and samples/s."""
    out = context.out / "plan" / "brats.yaml"
    args = seg(context, "plan", "--config", "configs/brats.yaml", "--config", "configs/fragments/nnunet.yaml",
               "--data.root", str(context.data), "--out", str(out), "--json")
    code, text = command(context, stage.name, args, timeout_s)
    lines = [line for line in text.splitlines() if line.startswith("{")]
    plan = json.loads(lines[-1]) if lines else {}
    keys = ("patch_size", "batch_size", "n_stages", "step_bytes", "samples_per_second", "memory_target_bytes")
    return failed_or_ok(code, timeout_s, {key: plan.get(key) for key in keys}, stage.name)


RUNNERS = {"install": install, "environment": environment, "pytest_gpu": pytest_gpu, "synth": synth, "fit": fit,
           "resume": fit, "bench_unet": bench, "bench_unet_compiled": bench, "bench_dynunet": bench,
           "plan": plan}


def run_stage(context: Context, stage: Stage, timeout_s: float, done: dict[str, Outcome]) -> Outcome:
    """Run one stage (its GPU memory peak polled when it needs the GPU); an exception is a failure, not a crash."""
    try:
        with MemoryPoller() if stage.needs_gpu else _Nothing() as poller:
            outcome = RUNNERS[stage.name](context, stage, timeout_s)
    except Exception as err:  # noqa: BLE001 (a broken stage must not stop the others or the summary)
        return Outcome("failed", note=f"{type(err).__name__}: {err}")
    if poller.peak is not None:
        outcome.figures["peak_gpu_memory_mib"] = poller.peak
    return outcome


class _Nothing:
    peak: Optional[int] = None

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
