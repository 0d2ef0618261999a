"""The `seg` command: LightningCLI for fit/validate/test/predict, plus small extra subcommands.

`seg synth ...` is dispatched here before LightningCLI sees the arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from .callbacks import with_default_logging
from .checkpointing import with_default_checkpoints
from .data.base import VolumeDataModule
from .errors import SegError
from .module import SegmentationModule

OVERVIEW = """\
seg: train 3D medical segmentation networks (Lightning + MONAI).

  seg fit --config configs/demo.yaml          train (LightningCLI: --trainer.*, --model.*, --data.*)
  seg validate|test|predict --config ... --ckpt_path ...
  seg synth demo --out DIR                    write a synthetic MSD-layout task

`seg SUBCOMMAND --help` describes each one. LightningCLI's own help follows.
"""


def run_name(datamodule: Any, model: SegmentationModule) -> str:
    """The run directory's name: `<dataset>_<architecture>_<scheduler>`."""
    dataset = getattr(datamodule, "dataset_name", None) or "data"
    return f"{dataset}_{model.hparams.architecture}_{model.hparams.scheduler}"


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
        )

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

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer with seg's default logger and callbacks where the config gives none."""
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            root = Path(config.get("default_root_dir") or ".") / "lightning_logs"
            kwargs["logger"] = TensorBoardLogger(
                save_dir=str(root), name=run_name(self.datamodule, self.model), default_hp_metric=False
            )
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_checkpointing", True) is not False:
            callbacks = with_default_checkpoints(callbacks)
        kwargs["callbacks"] = with_default_logging(callbacks)
        return super().instantiate_trainer(**kwargs)


def synth_command(argv: list[str]) -> int:
    """`seg synth KIND --out DIR`: write synthetic cases in a dataset's real layout."""
    from .data import synthetic

    parser = argparse.ArgumentParser(prog="seg synth", description="Write synthetic cases in a real layout.")
    parser.add_argument("kind", choices=["demo"], help="demo: small MSD-layout CT task (organ + lesion)")
    parser.add_argument("--out", required=True, help="folder to write the task into")
    parser.add_argument("--cases", type=int, default=12, help="number of cases (default 12)")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 48, 48], help="volume shape (default 48 48 48)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = synthetic.write_demo_task(args.out, cases=args.cases, shape=args.shape, seed=args.seed)
    print(f"wrote {args.cases} synthetic cases to {out}")
    return 0


EXTRA_COMMANDS: dict[str, Callable[[list[str]], int]] = {"synth": synth_command}


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
        # pass args only when they differ from sys.argv (LightningCLI warns otherwise)
        SegCLI(args=None if argv == sys.argv[1:] else argv)
    except Exception as exc:
        err = user_error(exc)
        if err is None:
            raise
        print(f"seg: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
