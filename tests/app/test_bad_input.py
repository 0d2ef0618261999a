"""The catalogue of what `seg` promises on bad input: one table, `CATALOGUE`, of cases (data, options, checkpoints,
conditions: `tests/app/catalogue/`). Each case states the command, its exit status, the words its one
`seg: error:` line must hold; every case also promises no traceback, nothing that existed changed or lost, and no
run directory or other file left behind. Only the cases that need root (mounts) are skipped without it.

(Damaged data files in detail: tests/data/test_checks.py; unsafe checkpoints and the run lock: tests/training;
a disk that fills up mid-run: tests/training/test_checkpointing.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from segmentation.data.synthetic import write

from ..helpers import copy_run
from .catalogue.checkpoints import CHECKPOINTS
from .catalogue.conditions import CONDITIONS
from .catalogue.data import DATA
from .catalogue.options import OPTIONS
from .catalogue.setting import Case, Setting, changes, snapshot

CATALOGUE: dict[str, Case] = {**DATA, **OPTIONS, **CHECKPOINTS, **CONDITIONS}
SIZE = 100  # at least (README and docs/safety.md state the number)


@pytest.fixture(scope="session")
def synthetic_roots(demo_root, tmp_path_factory):
    """`roots(kind)`: the MSD demo data, or a small BraTS or TotalSegmentator stand-in written on first use."""
    written = {"msd": demo_root}

    def roots(kind: str):
        if kind not in written:
            written[kind] = write(kind, tmp_path_factory.mktemp(kind), cases=4, shape=(32, 32, 32), seed=0)
        return written[kind]
    return roots


@pytest.mark.unit
def test_the_catalogue_holds_at_least_100_distinct_promises():
    assert len(CATALOGUE) == len(DATA) + len(OPTIONS) + len(CHECKPOINTS) + len(CONDITIONS) >= SIZE
    assert len({case.names for case in CATALOGUE.values()}) > 0.8 * len(CATALOGUE)
    for table in Path(__file__).with_name("catalogue").glob("*.py"):  # a name written twice would hide a case
        names = [key.value for node in ast.walk(ast.parse(table.read_text())) if isinstance(node, ast.Dict)
                 for key in node.keys if isinstance(key, ast.Constant) and isinstance(node.values[0], ast.Call)]
        assert len(names) == len(set(names)), table


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_seg_keeps_its_promise(name, synthetic_roots, finished_run, tmp_path, seg, request, monkeypatch):
    case = CATALOGUE[name]
    if "no-gpu" in case.needs and torch.cuda.is_available():
        pytest.skip("a promise about a machine without a GPU; this one has one")
    for variable, value in case.env.items():
        monkeypatch.setenv(variable, value)
    mounts = request.getfixturevalue("mounts") if "mounts" in case.needs else None
    setting = Setting(synthetic_roots, copy_run(finished_run, tmp_path), tmp_path, mounts)
    args = case.args(setting)
    with case.held(setting):
        before = snapshot(tmp_path)
        result = seg(*args, cwd=tmp_path)
    assert result.returncode == case.status, (result.stdout[-1000:], result.stderr[-1500:])
    errors = error_messages(result.stderr)
    if case.status in (0, 75):
        assert not errors and case.names in result.stdout + result.stderr + result.log, result.stderr[-1500:]
    else:
        assert len(errors) == 1 and case.names in errors[0], result.stderr[-1500:]
    assert "Traceback" not in result.stderr + result.log
    assert changes(before, snapshot(tmp_path), case.may_write) == []


def error_messages(stderr: str) -> list[str]:
    """Each `seg: error:` line with the indented lines under it (a dataset check lists its cases there)."""
    messages: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("seg: error:"):
            messages.append(line)
        elif messages and line.startswith(" ") and messages[-1].startswith("seg: error:"):
            messages[-1] += "\n" + line
    return messages
