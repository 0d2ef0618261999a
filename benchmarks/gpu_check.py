"""The GPU check of issue 19: `benchmarks/gpu.sh OUT [WHEELS]` calls `python benchmarks/gpu_check.py OUT [WHEELS]`.

Stages run one after another under a total budget (default 8 minutes, `--budget S` or GPU_CHECK_BUDGET) and a
budget of their own (`--stage NAME=S`): a stage runs only when its budget still fits in what is left, and its
budget is its timeout, so the whole check never runs past the total. A stage that does not fit, that needs a CUDA
device where there is none, or whose input stage did not succeed is skipped with a note. OUT/summary.json holds
every stage (status ok / failed / skipped, seconds, note, figures); OUT/logs/ each stage's full output. The exit
status is 1 when any stage failed (skips are not failures), else 0.

This module is the plan and its pure logic (decisions, summary, table, exit status); `gpu_stages.py` runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

DEFAULT_BUDGET_S = 510.0
NO_CUDA = "no CUDA device: skipped"


@dataclass(frozen=True)
class Stage:
    """One step of the check: its name, its budget (also its timeout), whether it needs CUDA, what it needs first."""

    name: str
    budget_s: float
    needs_gpu: bool = False
    after: tuple[str, ...] = ()
    what: str = ""


@dataclass
class Outcome:
    """What a stage came to: ok / failed / skipped, its wall time, a note and the figures it reported."""

    status: str
    seconds: float = 0.0
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


# budgets sum to the default total: every stage fits even when each one before it ran to its timeout
STAGES = (
    Stage("install", 30, what="imports from the working tree, else pip install --no-index from WHEELS"),
    Stage("environment", 20, after=("install",), what="GPU, driver, CUDA, torch/Lightning/MONAI, C compiler"),
    Stage("pytest_gpu", 60, True, ("environment",), "pytest -m gpu tests/training/test_gpu.py"),
    Stage("synth", 45, True, ("environment",), "BraTS-size synthetic cases, written by parallel processes"),
    Stage("fit", 90, True, ("synth",), "seg fit, cache gpu, seg's CUDA defaults, 2 epochs"),
    Stage("resume", 45, True, ("fit",), "seg fit --ckpt_path RUN --trainer.max_epochs 3"),
    Stage("bench_unet", 55, True, ("synth",), "seg bench, UNet, eager"),
    Stage("bench_unet_compiled", 80, True, ("synth",), "seg bench, UNet, --model.compile true"),
    Stage("bench_dynunet", 55, True, ("synth",), "seg bench, DynUNet, eager"),
    Stage("plan", 30, True, ("synth",), "seg plan with the nnU-Net fragment: candidates measured by real steps"),
)


def with_budgets(stages: tuple[Stage, ...], overrides: dict[str, float]) -> tuple[Stage, ...]:
    """`stages` with the budgets named in `overrides` replaced (an unknown name is an error)."""
    unknown = set(overrides) - {stage.name for stage in stages}
    if unknown:
        raise ValueError(f"unknown stage(s): {', '.join(sorted(unknown))}")
    return tuple(Stage(s.name, overrides.get(s.name, s.budget_s), s.needs_gpu, s.after, s.what) for s in stages)


def skip_reason(stage: Stage, remaining_s: float, has_gpu: bool, done: dict[str, Outcome]) -> Optional[str]:
    """Why `stage` does not run (None: it runs): no CUDA device, an input stage not ok, or too little time left."""
    environment = done.get("environment")
    if stage.needs_gpu and not has_gpu and environment is not None and environment.status == "ok":
        return NO_CUDA
    for needed in stage.after:
        before = done.get(needed)
        if before is None or before.status != "ok":
            return f"needs stage {needed}, which {before.status if before else 'did not run'}"
    if remaining_s < stage.budget_s:
        return f"out of time: {remaining_s:.0f} s left of the total budget, the stage needs {stage.budget_s:.0f} s"
    return None


def derived_figures(done: dict[str, Outcome]) -> dict[str, Any]:
    """Figures across stages: the compiled bench's extra wall time over the eager one (an upper bound on compile)."""
    eager, compiled = done.get("bench_unet"), done.get("bench_unet_compiled")
    if eager and compiled and eager.status == compiled.status == "ok":
        return {"compile_overhead_s_upper_bound": round(compiled.seconds - eager.seconds, 1)}
    return {}


def summary(done: dict[str, Outcome], budget_s: float, elapsed_s: float, notes: list[str]) -> dict[str, Any]:
    """The whole check as one JSON-ready dict: verdict, budget, time, every stage, derived figures, notes."""
    return {
        "passed": exit_status(done) == 0,
        "budget_s": budget_s,
        "elapsed_s": round(elapsed_s, 1),
        "stages": {name: asdict(outcome) for name, outcome in done.items()},
        "derived": derived_figures(done),
        "notes": notes,
    }


def exit_status(done: dict[str, Outcome]) -> int:
    """1 when any stage failed, else 0 (a skip, for lack of a GPU or of time, is not a failure)."""
    return int(any(outcome.status == "failed" for outcome in done.values()))


KEY_FIGURES = ("ceiling_samples_per_second", "fit_samples_per_second", "plain_samples_per_second",
               "fit_over_ceiling", "fit_over_plain", "peak_gpu_memory_mib", "last_val_dice", "epochs", "passed",
               "failed", "gpu", "cases")


def short_figures(figures: dict[str, Any]) -> str:
    """The headline figures of a stage in one line (numbers rounded)."""
    shown = [f"{key}={round(figures[key], 2) if isinstance(figures[key], float) else figures[key]}"
             for key in KEY_FIGURES if key in figures]
    return ", ".join(shown)


def table(done: dict[str, Outcome], derived: dict[str, Any]) -> str:
    """The short console table: one row per stage (status, seconds, headline figures or note)."""
    rows = [f"{'stage':<20} {'status':<8} {'seconds':>7}  figures / note"]
    for name, outcome in done.items():
        detail = short_figures(outcome.figures) or outcome.note
        if outcome.note and outcome.figures:
            detail = f"{detail} ({outcome.note})"
        rows.append(f"{name:<20} {outcome.status:<8} {outcome.seconds:>7.1f}  {detail}")
    rows += [f"{key}: {value}" for key, value in derived.items()]
    return "\n".join(rows)


Runner = Callable[[Stage, float, dict[str, Outcome]], Outcome]


def run_all(stages: tuple[Stage, ...], runner: Runner, budget_s: float,
            clock: Callable[[], float] = time.monotonic) -> dict[str, Outcome]:
    """Run or skip each stage in order; `runner(stage, timeout_s, done)` runs one and says what it came to."""
    started, done = clock(), {}  # type: ignore[var-annotated]
    has_gpu = False
    for stage in stages:
        reason = skip_reason(stage, budget_s - (clock() - started), has_gpu, done)
        if reason is not None:
            done[stage.name] = Outcome("skipped", note=reason)
        else:
            began = clock()
            outcome = runner(stage, stage.budget_s, done)
            outcome.seconds = round(clock() - began, 1)
            done[stage.name] = outcome
        if stage.name == "environment":
            has_gpu = bool(done[stage.name].figures.get("cuda_available"))
        print(f"gpu check: {stage.name}: {done[stage.name].status} {done[stage.name].note}".rstrip(), flush=True)
    return done


def parse_args(argv: list[str]) -> argparse.Namespace:
    """OUT, WHEELS, --budget, --stage NAME=S (repeatable)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("wheels", nargs="?", type=Path, default=None)
    parser.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", DEFAULT_BUDGET_S)))
    parser.add_argument("--stage", action="append", default=[], metavar="NAME=SECONDS")
    return parser.parse_args(argv)


def stage_overrides(pairs: list[str]) -> dict[str, float]:
    """`["fit=120"]` -> `{"fit": 120.0}`."""
    return {name: float(seconds) for name, _, seconds in (pair.partition("=") for pair in pairs)}


def main(argv: list[str]) -> int:
    """Run the check into OUT; print the table; return the exit status."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_stages import ROOT, Context, requirements, run_stage  # (imported here: the logic loads alone)

    if argv[:1] == ["--requirements"]:  # what a wheel folder must hold (docs/batches-and-measurement.md)
        print("\n".join(requirements((ROOT / "pyproject.toml").read_text())))
        return 0
    args = parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    context = Context.create(args.out, args.wheels)
    stages = with_budgets(STAGES, stage_overrides(args.stage))
    started = time.monotonic()
    done = run_all(stages, lambda stage, timeout, before: run_stage(context, stage, timeout, before), args.budget)
    result = summary(done, args.budget, time.monotonic() - started, context.notes)
    (args.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table(done, result["derived"]))
    print("\n".join(f"note: {note}" for note in context.notes))
    verdict = "passed" if result["passed"] else "FAILED"
    print(f"gpu check {verdict} in {result['elapsed_s']} s of {args.budget:.0f} s; {args.out / 'summary.json'}")
    return exit_status(done)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
