"""VolumeDataModule: one dataset layout's cases turned into training, validation, test and predict loaders.

A dataset module says where its cases are and what its channels, classes and intensities are (the abstract
methods below). This base composes the parts that do the work, each in its own module: the MONAI chains
(`pipelines`), the datasets of each cache mode (`caching`, `store`, `patches`), the up-front check
(`check_once`), the split (`split`), the resumable rank-aware loaders (`loaders`, `sampling`) and what test
and predict read (`inference`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Sequence, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import AttributeDict
from monai import transforms as mt
from monai.data import DataLoader, Dataset
from typing_extensions import override

from ..core.constants import CACHE_FOLDER_NAME
from ..core.errors import SegError
from ..core.internals import epochs_completed
from ..core.log import log
from . import pipelines
from .caching import STORE_MODES, CacheMode, preprocessing_key, refuse_removed_mode, sampling_seed, training_datasets
from .check_once import CheckOnce
from .checks import CheckReport, check_dataset
from .facts import DatasetFacts
from .inference import InferencePlan, make_plan
from .loaders import (
    batches_per_epoch,
    consumed_before,
    pins_memory,
    training_loader,
    training_position,
    volume_loader,
    volumes_per_batch,
)
from .normalization import normalization_transform
from .patches import finish_patches
from .split import DataSplit, dataset_split, refuse_an_empty_split
from .store import Store
from .suitability import PatchRule, patch_problem


class VolumeDataModule(pl.LightningDataModule, DatasetFacts):
    """Base of the dataset modules; subclasses implement the abstract `DatasetFacts`.

    Args:
        root: folder of the dataset in its own layout.
        patch_size: training patch (and sliding-window ROI) size in voxels.
        batch_size: patches per training batch (`samples_per_volume` patches come from each volume).
        samples_per_volume: random patches drawn from each loaded training volume.
        pos_fraction: share of patches centred on foreground.
        spacing: target voxel spacing in mm to resample to; None keeps each image's own.
        val_fraction: share of the non-test cases held out for validation.
        test_fraction: share of the cases held out for `seg test`, carved before the train/val split and
            never trained on nor used for selection (a dataset's official test split wins; default 0: none).
        test_on: what `seg test` scores: `test` (the test split) or `val` (the validation cases, labelled so).
        fold: with `num_folds`, the cross-validation fold held out (overrides `val_fraction`).
        num_folds: number of cross-validation folds.
        seed: seed of the split and, unless `sampling_seed` is given, of each epoch's shuffle and augmentation.
        sampling_seed: seed of each epoch's shuffle, patches and augmentation (`EpochSeededSampler`) apart from the
            split's (`seg batch --seeds`: runs that differ in it share their validation cases); None: `seed`.
        cache: none; memory (MONAI CacheDataset); store (each case preprocessed once, cropped and stored compactly
            in `cache_dir`, patches read by memory map: `data.store`); gpu (the store, its training volumes held
            on the accelerator, or in RAM on a CPU-only machine).
        cache_dir: folder of the caches (default: `<root>/.seg_cache`).
        num_workers: data-loader worker processes.
        predict_images: what `seg predict` reads: NIfTI files, folders (their `*.nii.gz` / `*.nii`) or glob patterns
            (default: every case of the dataset).
        steps_per_epoch: training batches per epoch (nnU-Net's 250), their volumes drawn with replacement, seeded
            as the shuffle; None: one pass over the training volumes per epoch.
        normalization: the planned intensity normalisation replacing the dataset's own, `{scheme: ct, clip: [lo, hi],
            mean: m, std: s}` or `{scheme: zscore, nonzero: false}` (`data.normalization`; `seg plan` writes it).
    """

    patch_rule = PatchRule()  # what the network asks of a patch, for the check's advice (set by the app)

    def __init__(self, root: str, patch_size: Sequence[int] = (96, 96, 96), batch_size: int = 2,
                 samples_per_volume: int = 2, pos_fraction: float = 0.5, spacing: Optional[Sequence[float]] = None,
                 val_fraction: float = 0.2, test_fraction: float = 0.0, test_on: Literal["test", "val"] = "test",
                 fold: Optional[int] = None, num_folds: int = 5, seed: int = 0, cache: CacheMode = "memory",
                 cache_dir: Optional[str] = None, num_workers: int = 2, predict_images: Optional[list[str]] = None,
                 steps_per_epoch: Optional[int] = None, normalization: Optional[dict] = None,
                 sampling_seed: Optional[int] = None):
        super().__init__()
        refuse_removed_mode(cache)
        if normalization is not None:  # refused at once (the channel count, not known yet, is checked at first use)
            normalization_transform(normalization, channels=None)
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.patch_size = list(patch_size)
        self.train_cases: list[dict] = []  # the split's cases, set by `setup`
        self.val_cases: list[dict] = []
        self.test_cases: list[dict] = []
        self.data_split: Optional[DataSplit] = None
        self.restored_split: Optional[DataSplit] = None
        self.resume_position: Optional[dict] = None  # (a checkpoint's: see state_dict)
        self.cache_device: Optional[torch.device] = None  # where `cache: gpu` holds volumes (None: the trainer's)
        self.check = CheckOnce(self.check_report, self.patch_problem, self.cache_folder(), self.root)
        self._built_for: Optional[tuple] = None
        self._stage: Optional[str] = None
        self._plans: dict[str, InferencePlan] = {}

    @property
    @override
    def hparams(self) -> AttributeDict:
        """The saved hyper-parameters, typed as what `save_hyperparameters` stores: fields read as attributes."""
        return cast(AttributeDict, super().hparams)

    def intensity(self) -> mt.Transform:
        """The intensity normalisation every pipeline applies: the planned `normalization`, else the dataset's own."""
        settings = self.hparams.get("normalization")
        return self.intensity_transform() if settings is None else normalization_transform(settings, self.num_channels)

    def preprocessing(self) -> list[mt.Transform]:
        """The deterministic MONAI steps of a labelled case (`pipelines.preprocessing`)."""
        return pipelines.preprocessing(self.intensity(), self.label_transform(), self.hparams.spacing)

    @override
    def prepare_data(self) -> None:
        """With `cache: store|gpu`, check every case, then build the store (Lightning: once per node, before setup)."""
        self.intensity()  # (a normalisation the channels refuse is refused here: seg runs this before any run folder)
        if self.hparams.cache in STORE_MODES and (cases := self.list_cases()):
            self.check(cases)
            self.build_store(cases)

    @override
    def setup(self, stage: Optional[str] = None) -> None:
        """Check and split the cases (deterministically, or as the checkpoint stored); for fit and validate, build
        the datasets. Predict reads its own images: no split applies."""
        self._stage = stage
        if stage == "predict":
            return
        cases = self.list_cases()
        if not cases:
            raise SegError(f"no labelled cases found in {self.root}; check --data.root")
        self.check(cases)
        by_id = {case["case"]: case for case in cases}
        split = self.restored_split or self.split(list(by_id))
        if missing := sorted(set(split.all_ids()) - set(by_id)):
            raise SegError(f"the checkpoint's data split names cases that are not in {self.root}: "
                           f"{', '.join(missing[:5])}")
        if stage == "fit":
            refuse_an_empty_split(split, self.root)
        if split != self.data_split:
            self.data_split, self._plans = split, {}
        self.train_cases, self.val_cases = [by_id[i] for i in split.train], [by_id[i] for i in split.val]
        self.test_cases = [by_id[i] for i in split.test]
        if stage not in ("test", "predict") and self._built_for != (split, self.cache_device):
            self.build_datasets()
            self._built_for = (split, self.cache_device)

    def build_datasets(self) -> None:
        """The training and validation datasets of the cache mode (`caching.training_datasets`)."""
        if self.hparams.cache in STORE_MODES:
            self.build_store(self.train_cases + self.val_cases)  # nothing to do when prepare_data built them
        self.train_set, self.val_set = training_datasets(self)

    def use_device(self, device: Optional[torch.device]) -> None:
        """Hold `cache: gpu` volumes on `device` (None: the trainer's); datasets are rebuilt at the next setup."""
        self.cache_device = device

    def training_device(self) -> torch.device:
        """Where `cache: gpu` holds the training volumes: `use_device`'s, else the trainer's (the CPU without one)."""
        trainer = getattr(self, "trainer", None)
        return self.cache_device or (trainer.strategy.root_device if trainer is not None else torch.device("cpu"))

    def cache_folder(self) -> Path:
        """Where this dataset's caches live (`cache_dir`, default `<root>/.seg_cache`)."""
        return Path(self.hparams.cache_dir or self.root / CACHE_FOLDER_NAME)

    def store(self) -> Store:
        """The crop-first store of this dataset's preprocessing settings (`data.store`)."""
        return Store(self.cache_folder() / f"store_{preprocessing_key(type(self).__name__, self.hparams)}")

    def build_store(self, cases: list[dict]) -> None:
        """Store every case of `cases` that is not stored yet (or changed since), saying size and progress."""
        self.store().build(cases, pipelines.store_preprocessing(self.hparams.spacing), self.intensity(),
                           workers=max(1, self.hparams.num_workers), say=log.info)

    def check_report(self, cases: list[dict]) -> CheckReport:
        """Every file of `cases` read and checked against this dataset's label values and channel count."""
        return check_dataset(cases, self.label_values(), self.cache_folder(), self.num_channels,
                             workers=max(2, self.hparams.num_workers))

    def patch_problem(self, report: CheckReport) -> str:
        """Why `patch_size` suits none of the checked volumes ("" if it suits): larger than all along an axis."""
        return patch_problem(report, self.patch_size, self.hparams.spacing, self.root, self.patch_rule)

    def split(self, case_ids: list[str]) -> DataSplit:
        """Test, train and validation case ids; a dataset with an official split (a meta.csv) overrides this."""
        return dataset_split(case_ids, self.hparams)

    @override
    def state_dict(self) -> dict:
        """Saved in every checkpoint: the split (a resume trains and validates, and `seg test` tests, on its cases)
        and the training position (`loaders.training_position`), from which a resume continues inside the epoch."""
        state = self.data_split.as_state() if self.data_split else {}
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            h = self.hparams
            state["position"] = training_position(trainer, volumes_per_batch(h.batch_size, h.samples_per_volume))
        return state

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        """Take the checkpoint's split (re-building the datasets if `setup` already ran with another) and position."""
        self.resume_position, self.restored_split = state_dict.get("position"), DataSplit.from_state(state_dict)
        if self.data_split is not None and self.restored_split != self.data_split:
            self.setup(self._stage)

    @override
    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of random patches: this rank's share, resumed inside the epoch a checkpoint stopped in."""
        # cache: gpu slices tensors held on the device, which worker processes cannot share
        return self.training_loader(0 if self.hparams.cache == "gpu" else self.hparams.num_workers)

    def training_loader(self, workers: int) -> DataLoader:
        """`train_dataloader` with `workers` loader processes (`seg bench` compares several)."""
        trainer = getattr(self, "trainer", None)
        start = epochs_completed(trainer) if trainer is not None else 0
        position, self.resume_position = self.resume_position, None  # used by the first loader of a resumed fit
        h = self.hparams
        return training_loader(self.train_set, volumes_per_batch(h.batch_size, h.samples_per_volume),
                               sampling_seed(h), start, h.cache in STORE_MODES, workers, trainer,
                               consumed_before(position, start), pins_memory(self.training_device(), h.cache),
                               h.get("steps_per_epoch"))

    def training_batches_per_epoch(self, world_size: int = 1) -> int:
        """Training batches per epoch on each of `world_size` ranks (`loaders.batches_per_epoch`; after `setup`)."""
        h = self.hparams
        return batches_per_epoch(len(self.train_set), volumes_per_batch(h.batch_size, h.samples_per_volume),
                                 world_size, h.get("steps_per_epoch"))

    @override
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """On the device: the store's compact training patches become float32 tensors and targets
        (`patches.finish_patches`); other batches pass unchanged."""
        return finish_patches(batch, self.label_transform())

    @override
    def val_dataloader(self) -> DataLoader:
        """Whole validation volumes, one at a time (their shapes differ), each on one rank, each with its `index`."""
        return volume_loader(self.val_set, self.hparams.num_workers, getattr(self, "trainer", None))

    def inference_plan(self, stage: Literal["test", "predict"]) -> InferencePlan:
        """What `seg test` scores or `seg predict` reads, with the one pipeline that preprocesses and later inverts
        them (`inference.make_plan`; made once per stage)."""
        if stage not in self._plans:
            self._plans[stage] = make_plan(stage, self)
        return self._plans[stage]

    @override
    def test_dataloader(self) -> DataLoader:
        """The scored cases as preprocessed images (metadata kept to invert predictions) and their label files."""
        return self.inference_loader("test")

    @override
    def predict_dataloader(self) -> DataLoader:
        """Whole images with their metadata, one at a time; `source` is the file whose geometry outputs take."""
        return self.inference_loader("predict")

    def inference_loader(self, stage: Literal["test", "predict"]) -> DataLoader:
        """The items of `stage`'s plan through its pipeline, one at a time, each on one rank."""
        plan = self.inference_plan(stage)
        trainer = getattr(self, "trainer", None)
        return volume_loader(Dataset(plan.items, plan.pipeline), self.hparams.num_workers, trainer)
