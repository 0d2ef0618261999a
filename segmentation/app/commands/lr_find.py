"""`seg lr-find --config X [overrides]`: an LR range test with seg's real model and data: plot, JSON, suggestion.

No run directory, checkpoint or temporary file is left behind; the config files are not touched.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import time
from pathlib import Path

from ...core.errors import SegError
from ...core.storage import write_atomically, write_text_atomically
from .. import own_files
from ..command_parser import CommandParser

DESCRIPTION = """An LR range test: builds the configured model and data as `seg fit` does, trains --steps optimizer
steps with the LR rising exponentially from --min-lr to --max-lr (Lightning's Tuner over seg's own training step:
its loss, precision, devices and gradient accumulation; no logger, no checkpoints, no callbacks, no validation),
then restores nothing it did not change: the model is discarded, no run directory or checkpoint remains, the config
files are untouched. Writes lr_find.png (loss against LR, log axis, the suggestion marked) and lr_find.json (lr,
loss, smoothed, suggestion) in --out, and prints the suggestion with a ready `seg fit` line.

The suggestion's rule: the loss smoothed by an exponential moving average (0.9, run forward and back: no lag); the
first 10% of the steps skipped (burn-in: an early spike is not the LR's doing); the curve cut where the loss
diverges (a non-finite loss, or the smoothed loss above 4x its lowest so far); the LR of the steepest descent of the
smoothed loss against log10(LR) between the burn-in and the smoothed minimum. The minimum's LR / 10 is the cross-
check (said whether they agree within 10x) and the fallback when the curve before the divergence has fewer than 8
points, fewer than 3 lie between the burn-in and the minimum, or the loss never descends there. The LR found holds
for the effective batch it was measured at (batch size x devices x nodes x accumulated batches, printed): another
batch needs another measurement."""
APPLY_HEADER = "# Written by `seg lr-find`"
MIN_STEPS = 10


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """lr-find's own options, and the rest (the config and its overrides, for LightningCLI)."""
    parser = CommandParser(prog="seg lr-find", description=DESCRIPTION, allow_abbrev=False,
                           usage="seg lr-find --config CONFIG [--data.* --model.* --trainer.*] [--min-lr LR] "
                           "[--max-lr LR] [--steps N] [--out DIR] [--apply FILE]",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-lr", type=float, default=1e-6, help="the smallest LR swept (default 1e-6)")
    parser.add_argument("--max-lr", type=float, default=1.0, help="the largest LR swept (default 1)")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps of the sweep (default 100)")
    parser.add_argument("--out", default="lr_find", help="folder for lr_find.png and lr_find.json (default lr_find)")
    parser.add_argument("--apply", metavar="FILE", help="also write FILE, a config fragment `model: {lr: X}` to "
                        "compose (`seg fit --config X --config FILE`); a FILE seg lr-find did not write is kept")
    args, rest = parser.parse_known_args(argv)
    if not (math.isfinite(args.min_lr) and args.min_lr > 0):
        raise SegError(f"--min-lr {args.min_lr:g}: give a positive LR (e.g. --min-lr 1e-6)")
    if not (math.isfinite(args.max_lr) and args.max_lr > args.min_lr):
        raise SegError(f"--min-lr {args.min_lr:g} --max-lr {args.max_lr:g}: --max-lr must be above --min-lr "
                       f"(e.g. --min-lr 1e-6 --max-lr 1)")
    if args.steps < MIN_STEPS:
        raise SegError(f"--steps {args.steps}: give at least {MIN_STEPS} steps (default 100)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SegError(f"--out {out} is a file; give a folder for lr_find.png and lr_find.json")
    if args.apply is not None:
        refuse_foreign_file(Path(args.apply))
    return args, rest


def refuse_foreign_file(path: Path) -> None:
    """SegError when `path` exists and is not a fragment seg lr-find wrote (a hand-written config is never lost)."""
    own_files.refuse_foreign_file(path, APPLY_HEADER, "--apply", "seg lr-find", "lr.yaml")


def plot(suggestion, path: Path, title: str) -> None:
    """Loss (raw and smoothed) against LR on a log axis, the suggestion and the minimum/10 marked; a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    lrs, losses = suggestion.lrs, suggestion.losses
    shown = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    axes.plot([lr for lr, _ in shown], [loss for _, loss in shown], color="0.7", linewidth=1, label="loss (per step)")
    axes.plot(lrs[:len(suggestion.smoothed)], suggestion.smoothed, color="C0", linewidth=2, label="smoothed loss")
    if suggestion.burn_in:
        axes.axvspan(lrs[0], lrs[suggestion.burn_in], color="0.9", label="burn-in (skipped)")
    axes.axvline(suggestion.lr, color="C3", linestyle="--", label=f"suggestion {suggestion.lr:.3g} ({suggestion.rule})")
    axes.axvline(suggestion.minimum_over_10, color="C2", linestyle=":",
                 label=f"minimum/10 {suggestion.minimum_over_10:.3g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    axes.set_title(title)
    write_atomically(path, lambda partial: figure.savefig(partial, format="png"))


def fit_line(rest: list[str], added: str) -> str:
    """The `seg fit` command of the same config and overrides (an `--model.lr` among them dropped) plus `added`."""
    kept = [arg for arg in rest if not arg.startswith("--model.lr")]
    return "seg fit " + shlex.join(kept) + " " + added


def main(argv: list[str]) -> int:
    """Measure the LR range test, print the suggestion and write the plot, the JSON and (--apply) the fragment."""
    if not argv or argv[0] in ("-h", "--help"):
        argv = ["--help"]
    started = time.perf_counter()
    args, rest = parse_arguments(argv)

    from ...measure.lr_find import suggest
    from ...measure.lr_range import range_test
    from ..lightning_cli import build_cli, patch_rule_of
    from ..preflight import check_data_before_any_run_directory

    cli = build_cli(rest)
    model, datamodule = cli.model, cli.datamodule
    datamodule.patch_rule = patch_rule_of(model)  # (the data check's advice: a patch the network takes)
    check_data_before_any_run_directory(datamodule)
    measured = range_test(model, datamodule, dict(cli.config_init.get("trainer") or {}), args.min_lr, args.max_lr,
                          args.steps)
    if not measured.is_global_zero:
        return 0
    suggestion = suggest(measured.lrs, measured.losses)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batch = (f"effective batch {measured.effective_batch} (batch size {measured.batch_size} x {measured.devices} "
             f"device(s) x {measured.num_nodes} node(s) x {measured.accumulate} accumulated)")
    plot(suggestion, out / "lr_find.png",
         f"seg lr-find: {model.hparams.architecture}, effective batch {measured.effective_batch}")
    record = {**suggestion.as_dict(), "effective_batch": measured.effective_batch,
              "lightning_suggestion": measured.lightning_suggestion, "command": "seg lr-find " + shlex.join(argv)}
    write_text_atomically(out / "lr_find.json", json.dumps(record, indent=1))
    print("\n".join(suggestion.lines()))
    print(f"measured at an {batch}")
    if measured.devices * measured.num_nodes > 1 or measured.accumulate > 1:
        print(f"  the LR found holds for this batch of {measured.effective_batch} samples per step; a run on "
              f"another number of devices, nodes or accumulated batches steps on another batch: measure there "
              f"again (Lightning #4878)")
    if args.apply:
        fragment = Path(args.apply)
        write_text_atomically(fragment, f"{APPLY_HEADER}: {' '.join(suggestion.lines()[:1])}\n"
                              f"#   seg lr-find {shlex.join(argv)}\nmodel:\n  lr: {suggestion.lr:.3g}\n")
        print(f"wrote {fragment}")
    print(f"wrote {out / 'lr_find.png'} and {out / 'lr_find.json'} in {time.perf_counter() - started:.1f} s")
    print(f"train with it: {fit_line(rest, f'--model.lr {suggestion.lr:.3g}')}")
    if args.apply:
        print(f"           or: {fit_line(rest, f'--config {shlex.quote(args.apply)}')}")
    return 0
