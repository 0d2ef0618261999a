"""The further checkpoints of an ensemble: loaded, checked to agree with the first, and kept off their own cases.

`seg test|predict --ckpt_path A --ensemble B C` runs A as Lightning runs any checkpoint and B, C beside it
(`model.ensemble.VolumeInference`). Every member must agree with A on what the outputs mean (channels, classes,
sigmoid regions or softmax classes) and on the preprocessing (every data setting that shapes the preprocessed
volume, as the store's key counts them): their probabilities are averaged voxel by voxel on one grid. `seg test`
scores no case that any member trained on or validated on (`EnsembleSplitGuard`): for a cross-validation
ensemble only the test split, carved before the folds, is legitimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from ..core.errors import SegError
from ..data.caching import TRAINING_ONLY
from ..data.split import stored_split
from ..model.module import SegmentationModule
from .checkpointing import load_checkpoint
from .config_diff import comparable
from .resume import resolve_checkpoint

OUTPUT_MEANING = ("in_channels", "out_channels", "multilabel", "class_names")
NOT_PREPROCESSING = {*TRAINING_ONLY, "root"}  # (another root: the same preprocessing of other files)


def preprocessing_settings(datamodule_hparams: dict) -> dict:
    """The data settings that shape the preprocessed volumes, and the datamodule's class."""
    return {key: comparable(value) for key, value in datamodule_hparams.items()
            if key not in NOT_PREPROCESSING and (key == "_class_path" or not key.startswith("_"))}


def disagreements(first: dict, other: dict) -> list[str]:
    """How the checkpoint `other` differs from `first` (both loaded) in output meaning and preprocessing."""
    found = [f"model.{key} {other['hyper_parameters'].get(key)!r} (not {first['hyper_parameters'].get(key)!r})"
             for key in OUTPUT_MEANING
             if comparable(first["hyper_parameters"].get(key)) != comparable(other["hyper_parameters"].get(key))]
    mine = preprocessing_settings(first.get("datamodule_hyper_parameters") or {})
    theirs = preprocessing_settings(other.get("datamodule_hyper_parameters") or {})
    found += [f"data.{key.lstrip('_')} {theirs.get(key)!r} (not {mine.get(key)!r})"
              for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]
    return found


def load_members(first_path: Path, paths: Sequence[str]) -> list[tuple[Path, dict]]:
    """The checkpoints `paths` (files or run directories) loaded, each checked against `first_path`'s: SegError
    naming both files and every difference when they disagree."""
    first = load_checkpoint(first_path)
    members = []
    for value in paths:
        try:
            path = resolve_checkpoint(str(value), run_root=None)
        except SegError as err:  # (the refusals of --ckpt_path, said of --ensemble)
            raise SegError(str(err).replace("--ckpt_path", "--ensemble")) from None
        if path is None:
            raise SegError("--ensemble last: name checkpoint files or run directories")
        checkpoint = load_checkpoint(path)
        different = disagreements(first, checkpoint)
        if different:
            raise SegError(f"--ensemble: {path} and {first_path} disagree on {'; '.join(different)}: "
                           f"an ensemble averages models of the same classes and preprocessing")
        members.append((path, checkpoint))
    return members


def member_module(checkpoint: dict) -> SegmentationModule:
    """The `SegmentationModule` of a loaded checkpoint, its weights in place, in eval mode, never compiled."""
    hparams = {key: value for key, value in checkpoint["hyper_parameters"].items() if not key.startswith("_")}
    module = SegmentationModule(**{**hparams, "compile": False})
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def used_cases(checkpoint: dict) -> set[str]:
    """The case ids a checkpoint's run trained or validated on (its stored split)."""
    split = stored_split(checkpoint)
    return {str(case) for case in [*split.train, *split.val]}


class EnsembleSplitGuard(Callback):
    """`seg test` with an ensemble: refuses, before any case is predicted, to score a case that any model trained
    or validated on.

    Args:
        models: (checkpoint file, the case ids its run trained or validated on), every model of the ensemble.
    """

    def __init__(self, models: Sequence[tuple[Path, set[str]]]):
        self.models = list(models)

    @override
    def on_test_start(self, trainer, pl_module) -> None:
        """SegError naming each checkpoint and the scored cases it has seen."""
        plan = trainer.datamodule.inference_plan("test")
        scored = {str(item["case"]) for item in plan.items}
        seen = [(path, sorted(scored & cases)) for path, cases in self.models if scored & cases]
        if seen:
            named = "; ".join(f"{path} trained or validated on {', '.join(cases[:5])}"
                              f"{' ...' if len(cases) > 5 else ''}" for path, cases in seen)
            raise SegError(f"seg test with an ensemble scores no case a model has seen ({plan.split} split): "
                           f"{named}. Test an ensemble on the test split its runs held out (--data.test_on test)")

