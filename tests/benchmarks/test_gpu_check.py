"""benchmarks/gpu_check.py: skip decisions, summary, exit status (unit); the script on the CPU (end to end)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402
import gpu_data  # noqa: E402
import gpu_stages  # noqa: E402
from gpu_check import NO_CUDA, Outcome, Stage  # noqa: E402

ENV_OK = {"install": Outcome("ok"), "environment": Outcome("ok", figures={"cuda_available": False})}


@pytest.mark.unit
def test_the_default_budgets_fit_the_default_total():
    assert sum(stage.budget_s for stage in gpu_check.STAGES) <= gpu_check.DEFAULT_BUDGET_S


@pytest.mark.unit
def test_a_gpu_stage_without_cuda_is_skipped_as_such_and_an_unmet_input_says_which():
    fit = Stage("fit", 90, True, ("synth",))
    assert gpu_check.skip_reason(fit, 400, False, ENV_OK) == NO_CUDA
    assert gpu_check.skip_reason(fit, 400, True, {**ENV_OK, "synth": Outcome("failed")}) == \
        "needs stage synth, which failed"
    assert gpu_check.skip_reason(fit, 400, True, {**ENV_OK, "synth": Outcome("ok")}) is None
    # without an environment report, a GPU stage says what it lacks, not "no CUDA device"
    assert "needs stage" in gpu_check.skip_reason(fit, 400, False, {})


@pytest.mark.unit
def test_a_stage_whose_budget_does_not_fit_in_what_is_left_is_skipped():
    stage = Stage("environment", 20)
    assert gpu_check.skip_reason(stage, 19.5, False, {}).startswith("out of time: 20 s left")
    assert gpu_check.skip_reason(stage, 20, False, {}) is None


@pytest.mark.unit
def test_run_all_gives_each_stage_its_budget_and_skips_what_the_clock_leaves_no_room_for():
    now = [0.0]
    stages = (Stage("install", 10), Stage("environment", 10, after=("install",)), Stage("slow", 50),
              Stage("after", 30))
    timeouts = {}

    def runner(stage, timeout, done):
        timeouts[stage.name] = timeout
        now[0] += {"install": 5, "environment": 5, "slow": 50}.get(stage.name, 0)
        return Outcome("ok", figures={"cuda_available": True} if stage.name == "environment" else {})

    done = gpu_check.run_all(stages, runner, 80, clock=lambda: now[0])
    assert timeouts == {"install": 10, "environment": 10, "slow": 50}
    assert done["slow"].seconds == 50
    assert done["after"].status == "skipped" and "20 s left" in done["after"].note


@pytest.mark.unit
def test_the_exit_status_fails_on_a_failure_only_and_the_summary_says_so():
    skipped = {**ENV_OK, "fit": Outcome("skipped", note=NO_CUDA)}
    assert gpu_check.exit_status(skipped) == 0
    failed = {**skipped, "bench_unet": Outcome("failed", 3.0, "exit status 1")}
    assert gpu_check.exit_status(failed) == 1
    result = gpu_check.summary(failed, 480, 12.34, ["a note"])
    assert result["passed"] is False and result["elapsed_s"] == 12.3 and result["notes"] == ["a note"]
    assert result["stages"]["bench_unet"] == {"status": "failed", "seconds": 3.0, "note": "exit status 1",
                                              "figures": {}}
    json.dumps(result)


@pytest.mark.unit
def test_the_table_shows_figures_and_the_compile_overhead():
    done = {"bench_unet": Outcome("ok", 40.0, figures={"fit_over_ceiling": 0.8123, "peak_gpu_memory_mib": 9000}),
            "bench_unet_compiled": Outcome("ok", 70.0, figures={"fit_samples_per_second": 12.0})}
    derived = gpu_check.derived_figures(done)
    assert derived == {"compile_overhead_s_upper_bound": 30.0}
    text = gpu_check.table(done, derived)
    assert "fit_over_ceiling=0.81, peak_gpu_memory_mib=9000" in text and "compile_overhead" in text


@pytest.mark.unit
def test_budgets_are_overridden_by_name_and_an_unknown_name_is_refused():
    stages = gpu_check.with_budgets(gpu_check.STAGES, gpu_check.stage_overrides(["fit=120"]))
    assert next(s for s in stages if s.name == "fit").budget_s == 120
    with pytest.raises(ValueError, match="unknown stage"):
        gpu_check.with_budgets(gpu_check.STAGES, {"fitt": 1})


@pytest.mark.unit
def test_the_wheel_requirements_are_the_dependencies_but_torch_plus_pytest():
    reqs = gpu_stages.requirements((BENCHMARKS.parent / "pyproject.toml").read_text())
    names = [gpu_stages.module_of(r) for r in reqs]
    assert "torch" not in names and {"monai", "lightning", "nibabel", "jsonargparse", "pytest"} <= set(names)


@pytest.mark.unit
def test_fit_figures_come_from_seg_fits_closing_summary():
    log = "seg run summary\n  run: /o/fit/lightning_logs/x/version_0\n  epochs: 2 (max_epochs 2), wall time 61.5 s\n" \
          "  last val/dice: 0.4321\n"
    assert gpu_stages.fit_figures(log) == {"run": "/o/fit/lightning_logs/x/version_0", "epochs": 2, "wall_s": 61.5,
                                           "last_val_dice": 0.4321}


@pytest.mark.unit
def test_parallel_parts_are_split_evenly_and_renumbered_into_one_folder(tmp_path):
    assert gpu_data.split_cases(20, 8) == [3, 3, 3, 3, 2, 2, 2, 2]
    assert gpu_data.split_cases(2, 8) == [1, 1]
    for part, cases in enumerate([2, 1]):
        for index in range(cases):
            case = tmp_path / f".part{part}" / f"BraTS2021_{index:05d}"
            case.mkdir(parents=True)
            (case / f"BraTS2021_{index:05d}_seg.nii.gz").write_text(f"{part}-{index}")
    gpu_data.merge_parts(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    assert (tmp_path / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz").read_text() == "1-0"


def test_the_script_on_a_cpu_machine_skips_the_gpu_stages_and_exits_0(tmp_path):
    out = tmp_path / "out"
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "DATA": str(tmp_path / "data")}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu.sh"), str(out), str(tmp_path / "no-wheels"), "--budget", "60"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "summary.json").read_text())
    stages = result["stages"]
    assert stages["install"]["status"] == stages["environment"]["status"] == "ok"
    assert stages["environment"]["figures"]["cuda_available"] is False
    gpu = [name for name in stages if name not in ("install", "environment")]
    assert all(stages[name] == {"status": "skipped", "seconds": 0.0, "note": NO_CUDA, "figures": {}} for name in gpu)
    assert result["passed"] is True and (out / "logs" / "environment.log").is_file()
    assert "no CUDA device" in done.stdout and "gpu check passed" in done.stdout


def test_a_failed_stage_makes_the_script_exit_1(tmp_path):
    """A stage with a budget of 0 s cannot finish: it fails (timed out), and the exit status says so."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), str(out), "--stage", "environment=0.01"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    stages = json.loads((out / "summary.json").read_text())["stages"]
    assert stages["environment"]["status"] == "failed" and "timed out" in stages["environment"]["note"]
    assert stages["fit"]["note"] == "needs stage synth, which skipped"
