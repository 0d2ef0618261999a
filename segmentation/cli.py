"""The `seg` command: LightningCLI for fit/validate/test/predict, plus small extra subcommands.

`seg synth ...` is dispatched here before LightningCLI sees the arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from . import resume
from .callbacks import optional_callbacks, with_default_logging
from .checkpointing import AtomicCheckpointIO, load_checkpoint, with_default_checkpoints
from .data.base import VolumeDataModule
from .errors import SegError
from .inference import PredictionWriter
from .module import SegmentationModule

OVERVIEW = """\
seg: train 3D medical segmentation networks (Lightning + MONAI).

  seg fit --config configs/demo.yaml          train (LightningCLI: --trainer.*, --model.*, --data.*)
  seg validate|test|predict --config ... --ckpt_path ...
  seg synth demo|msd|brats|brats2023|totalseg --out DIR   synthetic cases in a dataset's real layout
  seg check-data --config X                   check every case of a dataset up front, with a summary
  seg report RUN_DIR [RUN_DIR ...] --out DIR  Dice and LR curves (PNG) and a table comparing runs
  seg estimate --config X                     seconds per epoch and the whole run's time, measured here
  seg batch --config X --archs unet segresnet several runs in a row: plan, runs, summary (make batch1..3)

`seg SUBCOMMAND --help` describes each one. LightningCLI's own help follows.
"""


def run_name(datamodule: Any, model: SegmentationModule) -> str:
    """The run directory's name: `<dataset>_<architecture>_<scheduler>`."""
    dataset = getattr(datamodule, "dataset_name", None) or "data"
    return f"{dataset}_{model.hparams.architecture}_{model.hparams.scheduler}"


class SaveConfigBeside(SaveConfigCallback):
    """Saves the run's config as `config.yaml`; a resumed run's as `config.resume<N>.yaml` beside it."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Pick the first free file name, then save as LightningCLI does."""
        log_dir = Path(trainer.log_dir or ".")
        number = 0
        while (log_dir / self.config_filename).exists():
            number += 1
            self.config_filename = f"config.resume{number}.yaml"
        super().setup(trainer, pl_module, stage)


class SegCLI(LightningCLI):
    """LightningCLI with the model class fixed and the datamodule chosen by `class_path` in the config.

    It links the dataset's channels, classes and patch size into the model and,
    unless the config says otherwise, logs to TensorBoard under
    `lightning_logs/<dataset>_<architecture>_<scheduler>/version_N/` and adds
    the every-epoch/last/best checkpoints and the LR monitor.
    """

    def __init__(self, args: Optional[list[str]] = None, run: bool = True):
        super().__init__(
            SegmentationModule,
            VolumeDataModule,
            subclass_mode_data=True,
            args=args,
            run=run,
            parser_kwargs={"parser_mode": "omegaconf"},
            save_config_callback=SaveConfigBeside,
        )

    def _parse_ckpt_path(self) -> None:
        """Disabled: LightningCLI would put the checkpoint's hyper-parameters over explicit arguments.

        seg restores a checkpoint's settings by composing its stored config first
        (`resume.with_stored_config`), so that the user's arguments win.
        """

    def add_arguments_to_parser(self, parser) -> None:
        """Link what the dataset knows into the model, so it is never typed twice."""
        for source, target in (
            ("data.num_channels", "model.in_channels"),
            ("data.num_classes", "model.out_channels"),
            ("data.class_names", "model.class_names"),
            ("data.multilabel", "model.multilabel"),
            ("data.patch_size", "model.roi_size"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")
        parser.add_argument(
            "--prediction_dir",
            type=str,
            default="predictions",
            help="seg predict: folder for the label maps (<case>.nii.gz, in each input's geometry)",
        )
        parser.add_argument(
            "--early_stopping_patience",
            type=Optional[int],
            default=None,
            help="stop after N validations without a better val/dice (default: off); survives a resume",
        )
        parser.add_argument(
            "--preview_every_n_epochs",
            type=int,
            default=10,
            help="log one validation case's middle slices (image, truth, prediction) to TensorBoard "
            "every N epochs; 0 turns it off",
        )
        parser.add_argument(
            "--keep_last_epochs",
            type=Optional[int],
            default=None,
            help="keep only the newest N epoch=<E>.ckpt files (last.ckpt and best.ckpt are always kept); "
            "default: keep all",
        )

    def before_instantiate_classes(self) -> None:
        """Refuse a checkpoint whose architecture differs before the model is even built."""
        config = self.config.get(self.subcommand, self.config)
        value = config.get("ckpt_path")
        if not value or value == "last":
            return
        ckpt = resume.resolve_checkpoint(str(value), run_root=None)
        saved = load_checkpoint(ckpt).get("hyper_parameters", {})
        model = config.get("model")
        configured = {key: model.get(key) for key in ("architecture", "network_kwargs")}
        resume.refuse_incompatible(ckpt, saved, configured, keys=tuple(configured))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer with seg's defaults where the config gives none, resuming into the checkpoint's run."""
        config = self._get(self.config_init, "trainer", default={})
        subcommand_config = self.config_init.get(self.subcommand, self.config_init)
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        run_root = Path(config.get("default_root_dir") or ".") / "lightning_logs"
        run = run_root / run_name(self.datamodule, self.model)  # the folder of this run's version_N directories
        version = None
        if self.subcommand == "fit":
            config_yaml = self._parser(self.subcommand).dump(self.config[self.subcommand], skip_none=False)
            callbacks.append(resume.RunRecord(config_yaml))
            ckpt, summary = resume.prepare_fit_resume(
                subcommand_config.get("ckpt_path"), run, dict(self.model.hparams), config_yaml
            )
            subcommand_config["ckpt_path"] = str(ckpt) if ckpt else None
            callbacks += [summary] if summary else []
            resumed_run = resume.run_directory_of(ckpt) if ckpt else None
            if resumed_run is not None:
                run, version = resumed_run.parent, resumed_run.name
        if config.get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(
                save_dir=str(run.parent), name=run.name, version=version, default_hp_metric=False
            )
        if config.get("enable_checkpointing", True) is not False:
            callbacks = with_default_checkpoints(callbacks, subcommand_config.get("keep_last_epochs"))
        if not config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        if self.subcommand == "predict":
            callbacks.append(PredictionWriter(subcommand_config.get("prediction_dir") or "predictions"))
        if self.subcommand == "fit":
            callbacks += optional_callbacks(
                subcommand_config.get("early_stopping_patience"), subcommand_config.get("preview_every_n_epochs") or 0
            )
        kwargs["callbacks"] = with_default_logging(callbacks)
        return super().instantiate_trainer(**kwargs)


def synth_command(argv: list[str]) -> int:
    """`seg synth KIND --out DIR`: write synthetic cases in a dataset's real layout."""
    from .data import synthetic

    kinds = "; ".join(f"{name}: {text}" for name, text in synthetic.DESCRIPTIONS.items())
    parser = argparse.ArgumentParser(prog="seg synth", description="Write synthetic cases in a real layout.")
    parser.add_argument("kind", choices=list(synthetic.WRITERS), help=kinds)
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    parser.add_argument("--cases", type=int, default=12, help="number of cases (default 12)")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 48, 48], help="volume shape (default 48 48 48)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = synthetic.writer(args.kind)(Path(args.out), cases=args.cases, shape=tuple(args.shape), seed=args.seed)
    print(f"wrote {args.cases} synthetic {args.kind} cases to {out}")
    return 0


def check_data_command(argv: list[str]) -> int:
    """`seg check-data --config X [--data.*]`: the up-front dataset check alone, with a summary."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: seg check-data --config CONFIG [--data.root DIR ...]\n\nReads every case of the configured "
              "dataset and lists cases, shapes, spacings, label values and every problem (exit 1 if any).")
        return 0
    from .data.checks import check_dataset

    datamodule = SegCLI(args=argv, run=False).datamodule
    datamodule.prepare_data()  # e.g. TotalSegmentator merges its per-class masks here
    cases = datamodule.list_cases()
    started = time.perf_counter()
    report = check_dataset(cases, datamodule.label_values(), datamodule.cache_folder())
    print(report.summary())
    print(f"checked {len(cases)} cases in {time.perf_counter() - started:.1f} s ({datamodule.root})")
    return 1 if report.problems else 0


def report_command(argv: list[str]) -> int:
    """`seg report RUN_DIR [RUN_DIR ...] --out DIR`: compare runs from their TensorBoard events."""
    from .report import main as report_main

    return report_main(argv)


def estimate_command(argv: list[str]) -> int:
    """`seg estimate --config X`: seconds per epoch and the whole run's time, measured here."""
    from .estimate import estimate_command as run_estimate

    return run_estimate(argv)


def batch_command(argv: list[str]) -> int:
    """`seg batch --config X ...`: several runs in a row, with a plan first and a summary last."""
    from .batch import main as batch_main

    return batch_main(argv)


EXTRA_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "synth": synth_command,
    "check-data": check_data_command,
    "report": report_command,
    "estimate": estimate_command,
    "batch": batch_command,
}


def user_error(exc: BaseException) -> Optional[SegError]:
    """The SegError behind `exc`, if any (jsonargparse wraps errors raised while instantiating classes)."""
    while exc is not None:
        if isinstance(exc, SegError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the `seg` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            return EXTRA_COMMANDS[argv[0]](argv[1:])
        if not argv or argv[0] in ("-h", "--help"):
            print(OVERVIEW)
            argv = ["--help"]
        given = argv
        argv = resume.with_stored_config(argv)
        # pass args only when they differ from sys.argv (LightningCLI warns otherwise)
        SegCLI(args=None if argv == sys.argv[1:] and argv == given else argv)
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        print(f"seg: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
