"""`seg test|predict`'s ensemble, mirror-TTA and postprocessing options: `--ensemble B C`, `--tta flips`,
`--tta_axes 0,1`, `--postprocessing FILE`.

`--ckpt_path A --ensemble B C` (or `--ckpt_path A B C`) averages the probabilities of A, B and C (A's stored
config sets up the data, as for one model); `--tta flips` averages those of every flip combination of the
`--tta_axes` (default all three: 8 flips); `--postprocessing FILE` applies a cross-validation's decision
(`<group>_postprocessing.json`, `model.postprocessing`) to every label map written or scored. The checks of
the members live in `training.ensembles`, the averaging in `model.ensemble`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.callbacks import Callback

from ..core.errors import SegError
from ..core.log import log
from ..model.ensemble import VolumeInference
from ..model.postprocessing import Postprocessing
from ..model.tta import flip_sets, parse_axes
from ..training.checkpointing import load_checkpoint
from ..training.ensembles import EnsembleSplitGuard, load_members, member_module, used_cases
from ..training.resume import resolve_checkpoint

INFERENCE_STAGES = ("test", "predict")


@dataclass
class InferenceOptions:
    """What `seg test|predict` averages: the first checkpoint, the further ones (loaded), and the flips."""

    first: Optional[Path] = None
    members: list[tuple[Path, dict]] = field(default_factory=list)
    flips: Optional[list[tuple[int, ...]]] = None
    postprocessing: Optional[Postprocessing] = None
    postprocessing_file: Optional[Path] = None

    def suffix(self) -> str:
        """What distinguishes this inference's results file from one model's: `""`, `.ensemble3`, `.tta8`,
        `.postprocessed` ..."""
        return (f".ensemble{1 + len(self.members)}" if self.members else "") + (
            f".tta{len(self.flips)}" if self.flips else "") + (".postprocessed" if self.postprocessing else "")


def add_inference_arguments(parser: Any) -> None:
    """The options of ensembles and mirror TTA (read by `seg test` and `seg predict` only)."""
    parser.add_argument("--ensemble", type=str, default=None, nargs="+",
                        help="seg test|predict: further checkpoints (files or run directories) whose probabilities "
                             "are averaged with --ckpt_path's (same classes and preprocessing)")
    parser.add_argument("--tta", type=Optional[str], default=None,
                        help="seg test|predict: 'flips' averages the probabilities of every flip of --tta_axes "
                             "(mirror test-time augmentation); none (the default): off")
    # (defaults None: a resumed run's stored config from before these options reads as unchanged)
    parser.add_argument("--tta_axes", type=str, default=None, nargs="+",
                        help="the spatial axes --tta flips mirrors, e.g. 0,1 or 0 1 (4 flips); default 0 1 2 (8)")
    parser.add_argument("--postprocessing", type=Optional[str], default=None,
                        help="seg test|predict: a cross-validation's <group>_postprocessing.json (seg report --cv): "
                             "keep the largest component of the classes it names in every label map")


def with_ensemble_from_ckpt_paths(argv: list[str]) -> list[str]:
    """`seg test|predict --ckpt_path A B C ...` read as `--ckpt_path A --ensemble B C ...` (both forms work);
    SegError when further checkpoints are given both ways."""
    if not argv or argv[0] not in INFERENCE_STAGES or "--ckpt_path" not in argv:
        return argv
    start = argv.index("--ckpt_path") + 2
    end = start
    while end < len(argv) and not argv[end].startswith("-"):
        end += 1
    if end == start:
        return argv
    if any(arg == "--ensemble" or arg.startswith("--ensemble=") for arg in argv):
        raise SegError("give the further checkpoints of an ensemble after --ckpt_path or after --ensemble, not both")
    return [*argv[:start], "--ensemble", *argv[start:end], *argv[end:]]


def inference_options(subcommand: Optional[str], config: Any) -> InferenceOptions:
    """The checked options of `config`: SegError for an ensemble or TTA outside test/predict, an ensemble
    without a checkpoint file, an unknown `--tta`, or members that disagree with `--ckpt_path`'s model."""
    ensemble, tta = list(config.get("ensemble") or []), str(config.get("tta") or "none")
    if tta not in ("none", "flips"):
        raise SegError(f"--tta {tta}: give flips (mirror test-time augmentation) or none")
    if subcommand not in INFERENCE_STAGES:
        if ensemble or tta != "none" or config.get("postprocessing"):
            raise SegError(f"--ensemble, --tta and --postprocessing are options of seg test and seg predict, not of "
                           f"seg {subcommand}")
        return InferenceOptions()
    options = inference_members(config, ensemble, tta)
    if config.get("postprocessing"):
        options.postprocessing_file = Path(str(config.get("postprocessing")))
        options.postprocessing = read_postprocessing(options.postprocessing_file)
    return options


def read_postprocessing(path: Path) -> Postprocessing:
    """The decision in `path`; SegError naming the file when it cannot be read or is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SegError(f"--postprocessing {path}: cannot be read ({getattr(err, 'strerror', None) or err}); give the "
                       f"<group>_postprocessing.json seg report --cv wrote") from None
    return Postprocessing.from_json(text, f"--postprocessing {path}")


def check_postprocessing(options: InferenceOptions, subcommand: Optional[str], classes: dict) -> None:
    """SegError when `--postprocessing`'s classes (names and label values) are not the model's `classes`; else the
    decision said in the log."""
    decision = options.postprocessing
    if decision is None:
        return
    decision.refuse_other_classes(classes, f"--postprocessing {options.postprocessing_file}")
    log.info(f"seg {subcommand}: postprocessing from {options.postprocessing_file}: {decision.describe()}")


def inference_members(config: Any, ensemble: list, tta: str) -> InferenceOptions:
    """The ensemble members and flips of seg test|predict's `config` (checked)."""
    if config.get("tta_axes") and tta != "flips":
        raise SegError("--tta_axes chooses the flips of --tta flips: give --tta flips too")
    axes = config.get("tta_axes") or ["0", "1", "2"]
    axes = ",".join(map(str, axes)) if isinstance(axes, (list, tuple)) else str(axes)
    flips = flip_sets(parse_axes(axes)) if tta == "flips" else None
    if not ensemble:
        return InferenceOptions(flips=flips)
    value = config.get("ckpt_path")
    if not value or value == "last":
        raise SegError("--ensemble needs --ckpt_path FILE (the first model, whose stored config sets up the data)")
    first = resolve_checkpoint(str(value), run_root=None)
    assert first is not None  # (only `last` resolves to None)
    return InferenceOptions(first, load_members(first, ensemble), flips)


def attach_inference(subcommand: Optional[str], options: InferenceOptions, model: Any) -> list[Callback]:
    """Attach the averaging to `model` (said in the log); for `seg test` with an ensemble, the callback that keeps
    it off the cases its models have seen."""
    if subcommand not in INFERENCE_STAGES or (not options.members and not options.flips):
        return []
    inference = VolumeInference([member_module(checkpoint) for _, checkpoint in options.members], options.flips)
    model.volume_inference = inference
    files = ", ".join(str(path) for path in [options.first, *(path for path, _ in options.members)] if path)
    log.info(f"seg {subcommand}: {inference.describe()}" + (f" ({files})" if options.members else ""))
    if subcommand != "test" or not options.members or options.first is None:
        return []
    every = [(options.first, load_checkpoint(options.first)), *options.members]
    return [EnsembleSplitGuard([(path, used_cases(checkpoint)) for path, checkpoint in every])]
