"""`seg report` on real runs: two short demo runs (constant LR and plateau), a resumed run, bad input.

Every expected value is read back from the runs' own TensorBoard event files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

import matplotlib.image
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard import SummaryWriter

from segmentation.app.commands.report import COLUMNS, DERIVED_MARK, main, markdown_table
from segmentation.app.run_history import EPOCH_SECONDS, load_run
from segmentation.core.errors import SegError

from ..helpers import REPO, only_run_dir, scalars, seg_capturing, tiny_fit_args
from ..helpers import seg_in_process as seg_main

EPOCHS = 3
# patience 0 and a relative threshold no Dice can beat after the first epoch: the LR must be cut at least once
PLATEAU = ["--model.scheduler=reduce_on_plateau", "--model.schedule.plateau_patience=0",
           "--model.schedule.plateau_threshold=10"]


def train(root: Path, cwd: Path, *overrides: str) -> Path:
    """A tiny `seg fit` in `cwd`; returns its run directory."""
    cwd.mkdir(parents=True, exist_ok=True)
    result = seg_capturing(tiny_fit_args(root, *overrides), cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return only_run_dir(cwd / "lightning_logs")


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The report table's rows by run name: {run: {column: cell}}."""
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[1:]]
    return {row["run"]: row for row in rows}


def expected_reductions(lrs: list[float]) -> int:
    return sum(1 for a, b in zip(lrs, lrs[1:]) if a - b > 1e-9 * a)


@pytest.fixture(scope="module")
def compared(demo_root, tmp_path_factory):
    """Two 3-epoch runs (none, reduce_on_plateau) and `seg report` on both: (runs, report folder, process)."""
    base = tmp_path_factory.mktemp("report")
    runs = {
        "none": train(demo_root, base / "none", "--model.scheduler=none", f"--trainer.max_epochs={EPOCHS}"),
        "plateau": train(demo_root, base / "plateau", *PLATEAU, f"--trainer.max_epochs={EPOCHS}"),
    }
    out = base / "out"
    result = seg_capturing(["report", str(runs["none"]), str(runs["plateau"]), "--out", str(out), "--title", "tiny"],
                           cwd=base)
    assert result.returncode == 0, result.stderr[-2000:]
    return runs, out, result


def name_of(run: Path) -> str:
    return f"{run.parent.name}/{run.name}"


def test_png_is_a_readable_figure(compared):
    _, out, _ = compared
    image = matplotlib.image.imread(out / "report.png")
    assert image.shape[:2] == (800, 1000)  # 10 x 8 inches at 100 dpi
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20, "the figure looks blank"


def test_table_matches_the_event_files(compared):
    runs, out, result = compared
    markdown = (out / "report.md").read_text()
    rows = table_rows(markdown)
    assert set(rows) == {name_of(run) for run in runs.values()}
    for run in runs.values():
        row = rows[name_of(run)]
        dice = [value for _, value in scalars(run, "val/dice")]
        assert len(dice) == EPOCHS and row["epochs"] == str(EPOCHS)
        assert float(row["best val Dice"]) == pytest.approx(max(dice), abs=5e-5)
        assert int(row["best epoch"]) == dice.index(max(dice))
        assert float(row["final LR"]) == pytest.approx(scalars(run, "lr")[-1][1], rel=1e-3)
    assert rows[name_of(runs["none"])]["schedule"].startswith("none")
    assert "reduce_on_plateau" in rows[name_of(runs["plateau"])]["schedule"]
    assert "patience=0" in rows[name_of(runs["plateau"])]["schedule"]
    assert table_rows(result.stdout) == rows  # the same table on stdout
    assert "seg report " in markdown and "--title tiny" in markdown and "![" in markdown


def test_lr_reductions_counted_from_the_logged_lr(compared):
    runs, out, _ = compared
    rows = table_rows((out / "report.md").read_text())
    plateau_lrs = [value for _, value in scalars(runs["plateau"], "lr")]
    assert expected_reductions(plateau_lrs) >= 1, f"the plateau run never cut its LR: {plateau_lrs}"
    assert int(rows[name_of(runs["plateau"])]["LR reductions"]) == expected_reductions(plateau_lrs)
    assert int(rows[name_of(runs["none"])]["LR reductions"]) == 0
    assert expected_reductions([value for _, value in scalars(runs["none"], "lr")]) == 0


def test_epoch_times_are_the_logged_ones(compared):
    runs, out, _ = compared
    markdown = (out / "report.md").read_text()
    rows = table_rows(markdown)
    for run in runs.values():
        row = rows[name_of(run)]
        logged = [value for _, value in scalars(run, EPOCH_SECONDS)]
        assert len(logged) == EPOCHS, "the runs should log time/epoch_seconds (segmentation.callbacks.EpochTimer)"
        assert not row["total time (s)"].endswith(DERIVED_MARK)
        assert float(row["total time (s)"]) == pytest.approx(sum(logged), abs=0.05)
        assert float(row["mean epoch time (s)"]) == pytest.approx(sum(logged) / EPOCHS, abs=0.005)
    assert "derived from the event wall times" not in markdown


def without_tag(run: Path, dest: Path, tag: str, only: Optional[Path] = None) -> Path:
    """A copy of `run` whose event files (or just `only`) lack `tag`, the other records byte for byte:
    a run from before that tag was logged."""
    copy = dest / run.parent.name / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    for path in run.glob("events.out.tfevents.*"):
        if only is not None and path != only:
            continue
        with open(copy / path.name, "wb") as handle:
            writer = RecordWriter(handle)
            for record in RawEventFileLoader(str(path)).Load():
                if not any(value.tag == tag for value in Event.FromString(record).summary.value):
                    writer.write(record)
            writer.flush()
    return copy


def write_run_without_epoch_seconds(run: Path, epochs: int) -> dict[int, float]:
    """Events of a run from before `time/epoch_seconds` was logged, at chosen wall times; the expected durations.

    Epoch e starts (its `lr` event) at 100 + 10 e seconds and ends (its `epoch` and `val/dice` events)
    4 + e seconds later, two steps per epoch, as Lightning logs them.
    """
    writer = SummaryWriter(str(run))
    for epoch in range(epochs):
        start, end, step = 100.0 + 10 * epoch, 104.0 + 11 * epoch, 2 * epoch + 1
        writer.add_scalar("lr", 0.01, 2 * epoch, walltime=start)
        writer.add_scalar("val/dice", 0.5 + epoch / 10, step, walltime=end)
        writer.add_scalar("epoch", float(epoch), step, walltime=end)
    writer.close()
    return {epoch: 4.0 + epoch for epoch in range(epochs)}


@pytest.mark.unit
def test_epoch_times_of_an_older_run_are_derived_from_wall_times(tmp_path):
    run = tmp_path / "demo_unet_none" / "version_0"
    expected = write_run_without_epoch_seconds(run, EPOCHS)
    derived = load_run(run)
    assert derived.times_derived and derived.epoch_seconds == pytest.approx(expected, abs=1e-6)
    row = table_rows(markdown_table([derived]))[name_of(run)]
    assert row["total time (s)"] == f"{sum(expected.values()):.1f}{DERIVED_MARK}"
    assert "derived from the event wall times" in markdown_table([derived])


def test_epoch_times_logged_by_a_run_are_not_marked_derived(compared):
    runs, _, _ = compared
    logged = load_run(runs["plateau"])
    assert not logged.times_derived and sorted(logged.epoch_seconds) == list(range(EPOCHS))
    older = without_tag(runs["plateau"], runs["plateau"].parents[2] / "older", EPOCH_SECONDS)
    assert scalars(older, EPOCH_SECONDS) == [] and scalars(older, "val/dice") == scalars(runs["plateau"], "val/dice")
    assert load_run(older).times_derived and sorted(load_run(older).epoch_seconds) == list(range(EPOCHS))


def test_resumed_run_is_one_run_without_duplicated_epochs(demo_root, tmp_path, capsys):
    fit = tiny_fit_args(demo_root, f"--trainer.default_root_dir={tmp_path}", "--model.scheduler=none")
    assert seg_main([*fit, "--trainer.max_epochs=4", "--trainer.max_steps=4"]) == 0
    run = only_run_dir(tmp_path / "lightning_logs")
    assert not (run / "checkpoints/epoch=2.ckpt").exists()
    assert seg_main(["fit", "--ckpt_path", str(run / "checkpoints/epoch=1.ckpt"), "--trainer.max_steps=-1"]) == 0
    assert len(list(run.glob("events.out.tfevents.*"))) == 2
    capsys.readouterr()
    assert seg_main(["report", str(run.parent), "--out", str(tmp_path / "out")]) == 0  # the parent: newest version
    rows = table_rows((tmp_path / "out/report.md").read_text())
    assert list(rows) == [name_of(run)] and rows[name_of(run)]["epochs"] == "4"
    assert table_rows(capsys.readouterr().out) == rows
    curves = load_run(run)
    assert sorted(curves.dice) == sorted(curves.lr) == [0, 1, 2, 3]
    assert [curves.dice[e] for e in range(4)] == pytest.approx([v for _, v in scalars(run, "val/dice")])

    # resuming from an older checkpoint branches: the run keeps its 4 epochs, a new version holds epoch 3 again
    before = load_run(run)
    assert seg_main(["fit", "--ckpt_path", str(run / "checkpoints/epoch=2.ckpt")]) == 0
    branch = run.parent / "version_1"
    assert (branch / "BRANCHED_FROM").read_text().strip() == str(run / "checkpoints/epoch=2.ckpt")
    after = load_run(run)
    assert (after.dice, after.lr) == (before.dice, before.lr) and len(list(run.glob("events.out.tfevents.*"))) == 2
    assert sorted(load_run(branch).dice) == [3]

    # an older run resumed after time/epoch_seconds was added: the missing epochs' times are derived
    files = sorted(run.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    mixed = load_run(without_tag(run, tmp_path / "mixed", EPOCH_SECONDS, only=files[0]))
    assert mixed.times_derived and sorted(mixed.epoch_seconds) == [0, 1, 2, 3]
    assert mixed.epoch_seconds[3] == before.epoch_seconds[3]  # logged by the newest file, kept as logged


@pytest.mark.unit
def test_missing_run_dir_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "lightning_logs" / "no_such_run"
    assert seg_main(["report", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
def test_run_dir_without_events_is_refused(tmp_path):
    empty = tmp_path / "demo_unet_none" / "version_0"
    empty.mkdir(parents=True)
    with pytest.raises(SegError, match="version_0 has no TensorBoard event files"):
        main([str(empty.parent), "--out", str(tmp_path / "out")])


def make_compare(*variables: str, dry_run: bool = False) -> subprocess.CompletedProcess:
    """`make compare VARIABLES` in the repository (without re-installing)."""
    command = ["make", "-s", "-C", str(REPO), "-o", ".installed", *(["-n"] if dry_run else []), "compare", *variables]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_make_compare_runs_seg_report(compared):
    # a dry run: the real report is checked above, and each `seg` start costs ~7 s of imports
    runs, _, _ = compared
    result = make_compare(f"RUNS={runs['none']} {runs['plateau']}", dry_run=True)
    assert result.returncode == 0, result.stderr
    assert f"-m segmentation report {runs['none']} {runs['plateau']} --out reports/compare" in result.stdout
    assert "--out elsewhere" in make_compare("RUNS=a", "OUT=elsewhere", dry_run=True).stdout
    result = make_compare()
    assert result.returncode != 0 and "usage: make compare RUNS=" in result.stdout
