"""`seg report`: compare finished (or running) runs from their TensorBoard events, without re-training.

For each run directory it merges every `events.out.tfevents.*` file (a resumed run
adds one), maps global steps to epochs with Lightning's `epoch` scalar, and writes
`report.png` (val Dice and LR per epoch, runs overlaid) and `report.md` (a table). Runs that differ only by
seed (`seg batch --seeds`) are grouped: mean ± sd over the seeds, and two schedules compared seed by seed
(`app.seed_groups`); `--claim A B` adds one sentence: did A match B within the seeds' spread (`app.seed_claim`).
A batch folder (`lightning_logs/batches/NAME`) stands for the runs its `state.json` records.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ...core.errors import SegError
from ...core.storage import write_atomically, write_text_atomically
from ..command_parser import CommandParser
from ..cross_validation import recorded_run_dirs
from ..run_history import EPOCH, EPOCH_SECONDS, LR, RunCurves, load_run
from ..seed_claim import claim_sentences
from ..seed_groups import group_by_seed, paired, paired_table, seed_table

COLUMNS = ["run", "schedule", "epochs", "best val Dice", "best epoch", "final LR", "LR reductions",
           "mean epoch time (s)", "total time (s)"]
DERIVED_MARK = "†"
FIGURE_INCHES, FIGURE_DPI = (10, 8), 100


def table_row(run: RunCurves) -> list[str]:
    """The run's cells, in COLUMNS order."""
    best = run.best_dice()
    final_lr = run.lr[max(run.lr)] if run.lr else None
    seconds = list(run.epoch_seconds.values())
    mark = DERIVED_MARK if run.times_derived else ""
    return [
        run.name,
        run.schedule,
        str(run.epochs),
        f"{best[0]:.4f}" if best else "-",
        str(best[1]) if best else "-",
        f"{final_lr:.4g}" if final_lr is not None else "-",
        str(run.lr_reductions()),
        f"{sum(seconds) / len(seconds):.2f}{mark}" if seconds else "-",
        f"{sum(seconds):.1f}{mark}" if seconds else "-",
    ]


def markdown_table(runs: list[RunCurves]) -> str:
    """The comparison table (GitHub Markdown), with a note on epoch numbering and derived times."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_row(run)) + " |" for run in runs]
    notes = ["Epochs are counted from 0, as in the checkpoint names (`epoch=<E>.ckpt`)."]
    if any(run.times_derived for run in runs):
        notes.append(f"{DERIVED_MARK} `{EPOCH_SECONDS}` not logged (for some epochs): their times are derived from "
                     f"the event wall times (from the epoch's `{LR}` event, or else the previous epoch's end, to its "
                     f"last `{EPOCH}` event).")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def plot_runs(runs: list[RunCurves], title: str, path: Path) -> None:
    """Validation Dice (top) and LR on a log axis (bottom) per epoch, all runs overlaid; a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    dice_axes, lr_axes = figure.subplots(2, 1, sharex=True)
    for run in runs:
        dice_epochs = sorted(run.dice)
        (line,) = dice_axes.plot(dice_epochs, [run.dice[e] for e in dice_epochs], marker="o", markersize=3,
                                 label=run.name)
        lr_epochs = [e for e in sorted(run.lr) if run.lr[e] > 0]  # a log axis cannot show LR 0
        lr_axes.plot(lr_epochs, [run.lr[e] for e in lr_epochs], marker="o", markersize=3, color=line.get_color(),
                     drawstyle="steps-post")  # an epoch's LR holds for the whole epoch
    dice_axes.set_ylabel("validation Dice (val/dice)")
    dice_axes.grid(True, alpha=0.3)
    dice_axes.legend(loc="best", fontsize="small")
    lr_axes.set_yscale("log")
    lr_axes.set_ylabel("learning rate (lr)")
    lr_axes.set_xlabel("epoch (from 0)")
    lr_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    lr_axes.grid(True, which="both", alpha=0.3)
    figure.suptitle(title)
    write_atomically(path, lambda partial: figure.savefig(partial, dpi=FIGURE_DPI, format="png"))


def seed_sections(runs: list[RunCurves], claim: list[str] | None) -> str:
    """Markdown of the runs that differ only by seed: mean ± sd per group, the paired comparisons, the claim's
    sentences ("" without such runs)."""
    groups = [group for group in group_by_seed(runs) if len(group.runs) > 1 or claim]
    if not groups:
        return ""
    text = ("\n## Over seeds\n\nMean ± sample sd (n - 1) over the seeds of each run's best val/dice, of the first "
            "epoch whose val/dice reached 95% of the run's best, and of its wall time (its epochs' times).\n\n"
            + seed_table(groups))
    if pairs := paired(groups):
        text += ("\n## Paired over seeds\n\nTwo schedules on the same seeds: best val/dice of the first minus the "
                 "second, per seed; mean ± sd of the differences and the seeds each won.\n\n" + paired_table(pairs))
    if claim:
        text += "\n## Claim\n\n" + "\n".join(claim_sentences(pairs, *claim)) + "\n"
    return text


def write_markdown(runs: list[RunCurves], title: str, command: str, path: Path, claim: list[str] | None = None
                   ) -> str:
    """Write `report.md` (title, figure, table, the seed sections, command line); returns the tables."""
    table = markdown_table(runs) + seed_sections(runs, claim)
    write_text_atomically(path, f"# {title}\n\n![validation Dice and LR per epoch](report.png)\n\n{table}\n"
                    f"Produced by:\n\n```\n{command}\n```\n")
    return table


def run_folders(given: list[str]) -> list[Path]:
    """The run directories given, a batch folder (with `state.json`) standing for the runs it records."""
    folders: list[Path] = []
    for path in map(Path, given):
        if not (path / "state.json").is_file():
            folders.append(path)
            continue
        recorded = recorded_run_dirs(path)
        if not recorded:
            raise SegError(f"{path}: the batch has no run started yet (its state.json records none)")
        folders += recorded
    return folders


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """`RUN_DIR [RUN_DIR ...] --out DIR [--title T]`, or `--cv TARGET [--out DIR]`."""
    parser = CommandParser(
        prog="seg report",
        description="Compare runs from their TensorBoard events: report.png (val Dice and LR per epoch) "
        "and report.md (a table) in --out. Nothing is re-trained. With --cv: the cross-validation table.",
    )
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="lightning_logs/<name>/version_N, lightning_logs/<name> for its newest version, or a "
                        "batch folder lightning_logs/batches/NAME for its runs")
    parser.add_argument("--out", help="folder for report.png and report.md (created); with --cv: for the CV tables")
    parser.add_argument("--title", default="seg report", help="title of the figure and the Markdown file")
    parser.add_argument("--cv", metavar="BATCH_OR_RUN",
                        help="the CV table of a batch run with --folds (its folder or name) or of the fold runs "
                        "<run name>_fold<K>: each fold's validation cases scored as seg test scores (once; reused "
                        "while newer than the checkpoint), per fold, mean ± sd and pooled; <group>_cv.csv and .md")
    parser.add_argument("--claim", nargs=2, metavar=("SCHEDULE", "OTHER"),
                        help="one sentence per pair of seed groups: did SCHEDULE (e.g. reduce_on_plateau for N "
                        "epochs) match OTHER (e.g. none for 2N) within the seeds' spread (|mean paired difference of "
                        "best val/dice| <= one pooled sd)")
    parser.add_argument("--cv-checkpoint", choices=("best", "last"), default="best",
                        help="with --cv: the checkpoint of each fold that is scored (default best)")
    args = parser.parse_args(argv)
    if not args.runs and not args.cv:
        raise SegError("seg report: give RUN_DIR ... --out DIR, or --cv BATCH_OR_RUN (seg report --help)")
    if args.runs and not args.out:
        raise SegError("--out is missing: give the folder for report.png and report.md (it is created)")
    return args


def show_cv(args: argparse.Namespace) -> None:
    """Score the folds of `--cv` not scored yet, write each group's CV table and print it."""
    from ..cross_validation import cv_tables, postprocessing_path

    out = Path(args.out) if args.out else None
    for group, table, path, decision in cv_tables(args.cv, args.cv_checkpoint, out):
        print(f"\n{group}: cross-validation, {args.cv_checkpoint}.ckpt of each fold on its validation cases\n"
              f"{table.markdown()}wrote {path} and {path.with_suffix('.md')}")
        if decision is not None:
            print(f"postprocessing (keep the largest component, pooled over {decision.cases} validation cases):")
            print("\n".join(f"  {line}" for line in decision.lines()) + f"\nwrote {postprocessing_path(path)}")


def main(argv: list[str]) -> int:
    """`seg report`: read every run, then write the PNG and the Markdown table and print the table; with `--cv`
    the cross-validation table too."""
    args = parse_arguments(argv)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise SegError(f"--out {out} is a file; give a folder for report.png and report.md (it is created)")
    if args.cv:
        show_cv(args)
    if not args.runs:
        return 0
    assert out is not None
    runs = [load_run(run) for run in run_folders(args.runs)]
    out.mkdir(parents=True, exist_ok=True)
    plot_runs(runs, args.title, out / "report.png")
    table = write_markdown(runs, args.title, "seg report " + shlex.join(argv), out / "report.md", args.claim)
    print(table, end="")
    print(f"wrote {out / 'report.png'} and {out / 'report.md'}")
    return 0
