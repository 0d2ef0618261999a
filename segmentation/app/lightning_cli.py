"""SegCLI: LightningCLI for `seg fit|validate|test|predict`, with seg's run directories and default callbacks."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from typing_extensions import override

from ..core.directory_lock import refuse_if_locked
from ..core.errors import SegError
from ..core.internals import CommandLineWinsCLI, end_process
from ..data.base import VolumeDataModule
from ..data.suitability import PatchRule
from ..model.module import SegmentationModule
from ..model.networks import ARCHITECTURES, smallest_patch_side
from ..training import resume
from ..training.checkpoint_writer import KillBetweenEpochs
from ..training.checkpointing import load_checkpoint
from ..training.defaults import (
    accelerator_defaults,
    optional_callbacks,
    with_default_checkpoints,
    with_default_logging,
    with_seg_plugins,
)
from ..training.evaluation import NativeSpaceScorer, ValidationResults
from ..training.prediction import PredictionWriter
from ..training.preemption import Preemption
from ..training.rank_agreement import RankAgreement
from ..training.records import RunRecord
from ..training.run_lock import RunDirectoryLock
from .argv import check_config_files, integer_limits, with_integer_limits, with_stored_config
from .continuing import continue_preempted, keep_the_runs_horizon, max_epochs_on_command_line
from .inference_options import (
    add_inference_arguments,
    attach_inference,
    check_postprocessing,
    inference_options,
    with_ensemble_from_ckpt_paths,
)
from .preflight import (
    check_data_before_any_run_directory,
    refuse_impossible_options,
    refuse_unwritable,
    refuse_unwritable_results,
    refuse_validation_inside_epochs,
)
from .stop_before_training import stopping_on_signals


def run_name(datamodule: Any, model: SegmentationModule) -> str:
    """The run directory's name: `<dataset>_<architecture>_<scheduler>`, then `_seed<S>` for a run with its own
    `data.sampling_seed` (`seg batch --seeds`) and `_fold<K>` for a cross-validation fold."""
    dataset = getattr(datamodule, "dataset_name", None) or "data"
    setting = getattr(getattr(datamodule, "hparams", None), "get", lambda key: None)
    fold, seed = setting("fold"), setting("sampling_seed")
    suffix = (f"_seed{seed}" if seed is not None else "") + (f"_fold{fold}" if fold is not None else "")
    return f"{dataset}_{model.hparams.architecture}_{model.hparams.scheduler}{suffix}"


class SaveConfigBeside(SaveConfigCallback):
    """Saves the run's config as `config.yaml`; a resumed run's as `config.resume<N>.yaml` beside it."""

    @override
    def setup(self, trainer, pl_module, stage: str) -> None:
        """For a fit: pick the first free file name, then save as LightningCLI does (other stages save nothing)."""
        if stage != "fit":
            return
        log_dir = Path(trainer.log_dir or ".")
        number = 0
        while trainer.is_global_zero and (log_dir / self.config_filename).exists():
            number += 1
            self.config_filename = f"config.resume{number}.yaml"
        self.config_filename = trainer.strategy.broadcast(self.config_filename)  # rank 0's choice, on every rank
        super().setup(trainer, pl_module, stage)


class SegCLI(CommandLineWinsCLI):
    """LightningCLI with the model class fixed and the datamodule chosen by `class_path` in the config.

    It links the dataset's channels, classes and patch size into the model and,
    unless the config says otherwise, logs to TensorBoard under
    `lightning_logs/<dataset>_<architecture>_<scheduler>/version_N/` and adds
    the every-epoch/last/best checkpoints and the LR monitor.
    """

    def __init__(self, args: Optional[list[str]] = None, run: bool = True, own_process: bool = False):
        self.command_line = list(args if args is not None else sys.argv[1:])
        self.own_process = own_process  # this process is the `seg` command: a preempted fit may end it at once
        super().__init__(
            SegmentationModule,
            VolumeDataModule,
            subclass_mode_data=True,
            args=args,
            run=run,
            parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False},  # errors: app.main
            save_config_callback=SaveConfigBeside,
        )

    @override
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
        add_inference_arguments(parser)  # --ensemble, --tta, --tta_axes (seg test|predict)

    @override
    def before_instantiate_classes(self) -> None:
        """Refuse settings seg cannot honour, and a checkpoint whose architecture differs, before anything is built."""
        config = self.config.get(self.subcommand, self.config)
        refuse_validation_inside_epochs(config.get("trainer") or {})
        refuse_impossible_options(config)
        self.inference = inference_options(self.subcommand, config)  # (ensemble members checked, before any build)
        if self.subcommand == "predict":
            refuse_unwritable(config.get("prediction_dir") or "predictions", "--prediction_dir")
        value = config.get("ckpt_path")
        if not value or value == "last":
            return
        ckpt = resume.resolve_checkpoint(str(value), run_root=None)
        assert ckpt is not None  # (only `last` resolves to None)
        saved = load_checkpoint(ckpt).get("hyper_parameters", {})
        model = config.get("model")
        configured = {key: model.get(key) for key in ("architecture", "network_kwargs")}
        resume.refuse_incompatible(ckpt, saved, configured, keys=tuple(configured))

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer with seg's defaults where the config gives none, resuming into the checkpoint's run."""
        config = self.trainer_config()
        subcommand_config = self.config_init.get(self.subcommand, self.config_init)
        value = subcommand_config.get("ckpt_path")  # (its weights checked before any data is checked or stored)
        if value and value != "last":
            ckpt = resume.resolve_checkpoint(str(value), run_root=None)
            assert ckpt is not None  # (only `last` resolves to None)
            resume.refuse_weights_that_do_not_fit(ckpt, load_checkpoint(ckpt), self.model)
        limits = integer_limits(self.command_line)  # (counts of batches, not fractions: app.argv)
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        run_root = Path(config.get("default_root_dir") or ".") / "lightning_logs"
        run = run_root / run_name(self.datamodule, self.model)  # the folder of this run's version_N directories
        version = None
        if self.subcommand == "fit":
            self.datamodule.patch_rule = patch_rule_of(self.model)  # (the data check's advice: a patch it takes)
            with stopping_on_signals("checking the data and building the store"):
                check_data_before_any_run_directory(self.datamodule)
            refuse_unwritable(run_root, "--trainer.default_root_dir (or run seg in a writable folder)")
            config_yaml = with_integer_limits(self.subcommand_yaml(), limits)
            callbacks.append(RunRecord(config_yaml))
            given = max_epochs_on_command_line(self.command_line)
            ckpt_path = subcommand_config.get("ckpt_path") or continue_preempted(run, config_yaml)
            ckpt, summary = resume.prepare_fit_resume(ckpt_path, run, dict(self.model.hparams), config_yaml, given)
            if summary is not None and given is None:
                kwargs.update(keep_the_runs_horizon(summary.saved_max_epochs, config.get("max_epochs")))
            self.set_ckpt_path(str(ckpt) if ckpt else None)
            callbacks += [summary] if summary else []
            resumed_run = resume.run_directory_of(ckpt) if ckpt else None
            if resumed_run is not None and summary is not None and summary.newer is None:
                refuse_if_locked(resumed_run)  # before anything is built: another process trains into it
                run, version = resumed_run.parent, resumed_run.name
            elif resumed_run is not None:  # an older checkpoint: a new version of the same run name
                run = resumed_run.parent
            callbacks.append(RunDirectoryLock())
        if config.get("logger") in (None, True) and self.subcommand != "fit":
            kwargs["logger"] = False  # validate/test/predict print and write their results; no version_N of their own
        elif config.get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(
                save_dir=str(run.parent), name=run.name, version=version, default_hp_metric=False
            )
        if config.get("enable_checkpointing", True) is not False:
            callbacks = with_default_checkpoints(callbacks, subcommand_config.get("keep_last_epochs"))
        # under SLURM, seg's own preemption handling (training.preemption) replaces Lightning's auto-requeue,
        # which checkpoints into the working directory and skips seg's resume checks
        kwargs["plugins"] = with_seg_plugins(config.get("plugins"), SLURMEnvironment.detect())
        callbacks += attach_inference(self.subcommand, self.inference, self.model)
        postprocessing = self.inference.postprocessing  # (seg test|predict --postprocessing FILE)
        if postprocessing is not None:
            check_postprocessing(self.inference, self.subcommand, self.datamodule.class_values())
        if self.subcommand == "predict":
            callbacks.append(PredictionWriter(subcommand_config.get("prediction_dir") or "predictions", postprocessing))
        if self.subcommand in ("test", "validate"):
            results = results_path(subcommand_config.get("ckpt_path"), run, self.subcommand,
                                   "csv" if self.subcommand == "test" else "json", self.inference.suffix())
            refuse_unwritable_results(results.parent)
            callbacks.append(NativeSpaceScorer(results, postprocessing) if self.subcommand == "test"
                             else ValidationResults(results))
        if self.subcommand == "fit":
            callbacks.append(KillBetweenEpochs())  # a no-op unless SEG_KILL_AT names it (core.faults)
            # SIGTERM / SIGUSR1 / SIGINT: checkpoint this step, exit 75; a further signal: at once, exit 75
            callbacks.append(Preemption(exit_now=exit_at_once if self.own_process else None))
            callbacks.append(RankAgreement())  # DDP: replicas still equal after every epoch
            callbacks += optional_callbacks(
                subcommand_config.get("early_stopping_patience"), subcommand_config.get("preview_every_n_epochs") or 0
            )
        kwargs["callbacks"] = with_default_logging(callbacks, config.get("enable_progress_bar") is not False)
        kwargs["use_distributed_sampler"] = False  # seg's samplers shard by rank themselves (data.sampling)
        kwargs.update(accelerator_defaults(dict(config), torch.cuda.is_available()))
        kwargs.update(limits)
        return super().instantiate_trainer(**kwargs)


def patch_rule_of(model: SegmentationModule) -> PatchRule:
    """What the configured network asks of a patch: its architecture's multiple and its smallest side."""
    h = model.hparams
    multiple = ARCHITECTURES[h.architecture].patch_multiple
    return PatchRule(multiple, lambda: smallest_patch_side(h.architecture, h.in_channels, h.out_channels,
                                                           dict(h.network_kwargs or {})) or multiple)


def results_path(ckpt_path: Optional[str], run: Path, stage: str, suffix: str, averaged: str = "") -> Path:
    """`<run dir of the checkpoint>/<stage>/<checkpoint name><averaged>.<suffix>` (the configured run's folder
    without one; `averaged`: `.ensemble3.tta8` and the like, `InferenceOptions.suffix`)."""
    ckpt = Path(ckpt_path) if ckpt_path and ckpt_path != "last" else None
    run_dir = resume.run_directory_of(ckpt) if ckpt else None
    return (run_dir or run) / stage / f"{ckpt.stem if ckpt else 'untrained'}{averaged}.{suffix}"


def run_lightning_cli(argv: list[str], own_process: bool = False) -> int:
    """`seg fit|validate|test|predict ...`: LightningCLI, after a checkpoint's stored config is put first
    (`own_process`: this process is the `seg` command itself)."""
    given = argv
    argv = with_ensemble_from_ckpt_paths(argv)  # (--ckpt_path A B C: an ensemble)
    check_config_files(argv)
    argv = with_stored_config(argv)
    try:  # (pass args only when they differ from sys.argv: LightningCLI warns otherwise)
        SegCLI(args=None if argv == sys.argv[1:] and argv == given else argv, own_process=own_process)
    except MisconfigurationException as err:  # Lightning's refusal of trainer settings seg did not check itself
        raise SegError(f"Lightning refused the trainer settings: {' '.join(str(err).split())}") from None
    finally:
        leave_process_group()
    return 0


def leave_process_group() -> None:
    """End this process's part in a DDP run's process group (Lightning leaves it open): a gloo group torn down by
    the interpreter's exit instead, while its threads still run, can abort the process ("terminate called without
    an active exception", exit -6) after the run's work is done."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()


def exit_at_once(status: int) -> None:
    """End the `seg` process now with `status`, that of a fit a signal stopped: what it printed is flushed; nothing
    else runs (no Python finalisation), and nothing saved is touched (seg writes every file atomically)."""
    with contextlib.suppress(Exception):  # (called from a signal handler, too: a stream may be mid-write)
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    end_process(status)


def build_cli(argv: list[str]) -> SegCLI:
    """The configured model and datamodule (and their config) without running anything, for the helper commands."""
    with warnings.catch_warnings():  # LightningCLI warns that args differ from sys.argv: intended here
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter")
        return SegCLI(args=argv, run=False)
