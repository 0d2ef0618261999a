"""Bad input gets one line naming the file or option, exit status 2, no traceback, and nothing saved changes.

(The growing catalogue of issue 10; the dataset-file cases live in tests/data/test_checks.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..helpers import copy_run, tiny_fit_args


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CASES = {
    "negative lr": (lambda root, run, tmp: tiny_fit_args(root, "--model.lr=-0.001"), "--model.lr -0.001"),
    "zero batch size": (lambda root, run, tmp: tiny_fit_args(root, "--data.batch_size=0"), "--data.batch_size 0"),
    "zero epochs": (lambda root, run, tmp: tiny_fit_args(root, "--trainer.max_epochs=0"), "--trainer.max_epochs 0"),
    "max_epochs below the checkpoint's": (
        lambda root, run, tmp: ["fit", f"--ckpt_path={run / 'checkpoints/last.ckpt'}", "--trainer.max_epochs=2"],
        "--trainer.max_epochs 2: checkpoint"),
    "YAML syntax error": (
        lambda root, run, tmp: ["fit", "--config", str(write(tmp / "broken.yaml", "trainer:\n  max_epochs: [1, 2\n"))],
        "broken.yaml is not valid YAML at line"),
    "missing config file": (lambda root, run, tmp: ["fit", "--config", str(tmp / "nowhere.yaml")],
                            "nowhere.yaml does not exist (--config)"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(name, demo_root, finished_run, tmp_path, seg):
    run = copy_run(finished_run, tmp_path)
    before = snapshot(tmp_path / "lightning_logs")
    make_args, named = CASES[name]
    result = seg(*make_args(demo_root, run, tmp_path), cwd=tmp_path)
    assert result.returncode == 2, (name, result.stdout[-1000:], result.stderr[-1000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("seg: error:")]
    assert len(errors) == 1 and named in errors[0], result.stderr[-1000:]
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path / "lightning_logs") == before  # no checkpoint touched, no run directory made
