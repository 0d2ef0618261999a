"""VolumeDataModule: the split, transforms, caching and loaders shared by every dataset layout.

A dataset module says where its cases are (`list_cases`), what its channels
and classes are called, and how its intensities are normalised; this base turns
that into MONAI pipelines: reorient to RAS, optional resampling, normalisation,
foreground/background-balanced random patches and flips for training, whole
volumes for validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from monai import transforms as mt
from monai.data import DataLoader, Dataset

from ..core.constants import CACHE_FOLDER_NAME
from ..core.errors import SegError
from ..core.locking import exclusive
from ..core.storage import writable_problem
from .caching import (
    STORE_MODES,
    CacheMode,
    announce_cache,
    cached_dataset,
    preprocessing_key,
    stored_datasets,
)
from .checks import CheckReport, check_dataset, patch_problem
from .geometry import first_image_path
from .layouts.common import images_of
from .loaders import training_loader, volume_loader
from .patches import finish_patches
from .split import DataSplit, carve_test, split_cases
from .store import Store


class VolumeDataModule(pl.LightningDataModule):
    """Base of the dataset modules; subclasses implement `list_cases` and the dataset facts.

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
        seed: seed of the split and of each epoch's shuffle and augmentation (`EpochSeededSampler`).
        cache: none; memory (MONAI CacheDataset); disk (MONAI PersistentDataset in `cache_dir`); store (each case
            preprocessed once, cropped and stored compactly in `cache_dir`, patches read by memory map: `data.store`);
            gpu (the store, its training volumes held on the accelerator, or in RAM on a CPU-only machine).
        cache_dir: folder of the caches (default: `<root>/.seg_cache`).
        num_workers: data-loader worker processes.
        predict_images: what `seg predict` reads: NIfTI files, folders (their `*.nii.gz` / `*.nii`) or glob patterns
            (default: every case of the dataset).
    """

    dataset_name = "volumes"

    def __init__(
        self,
        root: str,
        patch_size: Sequence[int] = (96, 96, 96),
        batch_size: int = 2,
        samples_per_volume: int = 2,
        pos_fraction: float = 0.5,
        spacing: Optional[Sequence[float]] = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        test_on: Literal["test", "val"] = "test",
        fold: Optional[int] = None,
        num_folds: int = 5,
        seed: int = 0,
        cache: CacheMode = "memory",
        cache_dir: Optional[str] = None,
        num_workers: int = 2,
        predict_images: Optional[list[str]] = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.patch_size = list(patch_size)
        self.train_cases: list[dict] = []
        self.val_cases: list[dict] = []
        self.test_cases: list[dict] = []
        self.data_split: Optional[DataSplit] = None
        self.restored_split: Optional[DataSplit] = None
        self.resume_position: Optional[dict] = None  # (a checkpoint's: see state_dict)
        self.datasets_built = False
        self._stage: Optional[str] = None
        self._passed_check: Optional[list[dict]] = None

    # --- what a dataset module provides -------------------------------------------------------
    @property
    def channel_names(self) -> list[str]:
        """Names of the image channels, in the order the network sees them."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        """Names of the foreground classes (or regions when `multilabel`)."""
        raise NotImplementedError

    multilabel = False

    def list_cases(self) -> list[dict]:
        """All labelled cases as dicts with `case` (id), `image` (path or list of paths) and `label`."""
        raise NotImplementedError

    def intensity_transform(self) -> mt.Transform:
        """The intensity normalisation of this dataset's modality."""
        raise NotImplementedError

    def label_values(self) -> set[int]:
        """The label values the dataset's label files may hold (checked up front)."""
        raise NotImplementedError

    def label_transform(self) -> Optional[mt.Transform]:
        """Turns the label file's values into the training target (e.g. BraTS regions); None keeps them."""
        return None

    def prediction_to_labels(self, prediction: torch.Tensor) -> torch.Tensor:
        """A discrete prediction as a (1, X, Y, Z) label map in the dataset's own label values.

        `prediction` is a (1, X, Y, Z) map of class indices (softmax classes: class i is label value i
        here), or (C, X, Y, Z) region masks when `multilabel` (such a dataset overrides this).
        """
        return prediction.long()

    def labels_to_targets(self, labels: torch.Tensor) -> torch.Tensor:
        """A (1, X, Y, Z) label map in the dataset's own values as what metrics compare: an (X, Y, Z) class
        map, or (C, X, Y, Z) region masks when `multilabel` (such a dataset overrides this)."""
        return labels[0].long()

    # --- derived facts, linked into the model ---------------------------------------------------
    @property
    def num_channels(self) -> int:
        """Input channels of the network."""
        return len(self.channel_names)

    @property
    def num_classes(self) -> int:
        """Output channels of the network: regions, or classes plus background."""
        return len(self.class_names) + (0 if self.multilabel else 1)

    # --- pipelines ---------------------------------------------------------------------------------
    def spatial_steps(self, keys: list[str]) -> list[mt.Transform]:
        """Load, channel first, reorient to RAS and (optionally) resample `keys` (images linear, labels nearest)."""
        modes = tuple("nearest" if key == "label" else "bilinear" for key in keys)
        steps: list[mt.Transform] = [
            mt.LoadImaged(keys=keys, ensure_channel_first=True, image_only=True),
            mt.Orientationd(keys=keys, axcodes="RAS"),
        ]
        if self.hparams.spacing:
            steps.append(mt.Spacingd(keys=keys, pixdim=tuple(self.hparams.spacing), mode=modes))
        return steps

    def preprocessing(self) -> list[mt.Transform]:
        """Deterministic steps for labelled cases: spatial steps, normalisation, label targets."""
        steps = self.spatial_steps(["image", "label"])
        steps.append(self.intensity_transform())
        if self.label_transform() is not None:
            steps.append(self.label_transform())
        steps.append(mt.EnsureTyped(keys=["image", "label"], track_meta=False))
        return steps

    def predict_transform(self) -> mt.Compose:
        """Preprocessing of images alone, keeping the metadata `Invertd` needs to undo it."""
        return mt.Compose([*self.spatial_steps(["image"]), self.intensity_transform(), mt.EnsureTyped(keys="image")])

    def augmentation(self) -> list[mt.Transform]:
        """Random steps of training: balanced patches, flips, intensity scaling and shifts (±10%)."""
        pos = self.hparams.pos_fraction
        return [
            mt.SpatialPadd(keys=["image", "label"], spatial_size=self.patch_size),
            mt.RandCropByPosNegLabeld(
                keys=["image", "label"],
                label_key="label",
                spatial_size=self.patch_size,
                pos=pos,
                neg=1.0 - pos,
                num_samples=self.hparams.samples_per_volume,
            ),
            mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
            mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1),
            mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=2),
            mt.RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]

    def setup(self, stage: Optional[str] = None) -> None:
        """Split the cases (deterministically, or as the checkpoint stored); for fit and validate, build the datasets."""
        self._stage = stage
        if stage == "predict":
            return  # `predict_cases` reads the images itself: no split (the checkpoint's included) applies
        cases = self.list_cases()
        if not cases:
            raise SegError(f"no labelled cases found in {self.root}; check --data.root")
        self.check(cases)
        by_id = {case["case"]: case for case in cases}
        split = self.restored_split or self.split(list(by_id))
        missing = sorted(set(split.all_ids()) - set(by_id))
        if missing:
            raise SegError(
                f"the checkpoint's data split names cases that are not in {self.root}: {', '.join(missing[:5])}"
            )
        if split != self.data_split:
            self.data_split, self.datasets_built = split, False
            self.train_cases, self.val_cases = [by_id[i] for i in split.train], [by_id[i] for i in split.val]
            self.test_cases = [by_id[i] for i in split.test]
        if self.datasets_built or stage in ("test", "predict"):  # test and predict read their cases themselves
            return
        if self.hparams.cache in STORE_MODES:
            self.build_store(self.train_cases + self.val_cases)  # nothing to do when prepare_data built them
            device = self.training_device() if self.hparams.cache == "gpu" else None
            self.train_transform = None
            self.train_set, self.val_set = stored_datasets(
                self.store(), [c["case"] for c in self.train_cases], [c["case"] for c in self.val_cases], device,
                self.hparams, self.label_transform())
            self.datasets_built = True
            return
        preprocessing = self.preprocessing()
        if self.hparams.cache in ("memory", "disk"):
            announce_cache(self.train_cases + self.val_cases, mt.Compose(preprocessing), self.hparams.cache,
                           self.cache_folder())
        self.train_transform = mt.Compose(preprocessing + self.augmentation())
        self.train_set = self._dataset(self.train_cases, self.train_transform)
        self.val_set = self._dataset(self.val_cases, mt.Compose(preprocessing))
        self.datasets_built = True

    def prepare_data(self) -> None:
        """With `cache: store|gpu`, check every case, then build the store (Lightning: once per node, before setup)."""
        if self.hparams.cache in STORE_MODES:
            cases = self.list_cases()
            if cases:
                self.check(cases)
                self.build_store(cases)

    def store(self) -> Store:
        """The crop-first store of this dataset's preprocessing settings (`data.store`)."""
        return Store(self.cache_folder() / f"store_{self.preprocessing_key()}")

    def build_store(self, cases: list[dict]) -> None:
        """Store every case of `cases` that is not stored yet (or changed since), saying size and progress."""
        spatial = mt.Compose([*self.spatial_steps(["image", "label"]),
                              mt.EnsureTyped(keys=["image", "label"], track_meta=False)])
        # the label transform (e.g. BraTS regions) runs per patch: the store keeps the compact label map
        self.store().build(cases, spatial, self.intensity_transform(), workers=max(1, self.hparams.num_workers),
                           say=rank_zero_info)

    def training_device(self) -> torch.device:
        """Where `cache: gpu` holds the training volumes: `gpu_cache_device` if set (seg bench), else the
        trainer's device (the CPU without a trainer)."""
        trainer = getattr(self, "trainer", None)
        default = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        return getattr(self, "gpu_cache_device", None) or default

    def cache_folder(self) -> Path:
        """Where this dataset's caches live (`cache_dir`, default `<root>/.seg_cache`)."""
        return Path(self.hparams.cache_dir or self.root / CACHE_FOLDER_NAME)

    def check(self, cases: list[dict]) -> Optional[CheckReport]:
        """The up-front check of every case; SegError listing every problem, so training never starts.

        The same cases are checked once per datamodule (`seg fit` checks before the run directory exists,
        Lightning's `setup` would check again); None when they passed already.
        """
        if cases == self._passed_check:
            return None
        with exclusive(self.cache_folder() / "check.lock"):  # DDP ranks started together: one reads, the rest reuse
            report = self.check_report(cases)
        if report.problems:
            listed = "\n".join(f"  {problem}" for problem in report.problems)
            raise SegError(
                f"the dataset check found {len(report.problems)} problem(s) in {self.root}; training was not "
                f"started. Fix or remove these cases (seg check-data re-runs the check alone):\n{listed}"
            )
        patch = self.patch_problem(report)
        if patch:
            raise SegError(patch)
        unwritable = writable_problem(self.cache_folder()) if self.hparams.cache == "disk" else ""
        if unwritable:
            raise SegError(f"--data.cache disk: cannot write the cache in {self.cache_folder()} ({unwritable}); "
                           f"set --data.cache_dir to a writable folder (e.g. on local scratch) or use --data.cache memory")
        self._passed_check = list(cases)
        return report

    def check_report(self, cases: list[dict]) -> CheckReport:
        """Every file of `cases` read and checked against this dataset's label values and channel count."""
        return check_dataset(cases, self.label_values(), self.cache_folder(), self.num_channels,
                             workers=max(2, self.hparams.num_workers))

    def patch_problem(self, report: CheckReport) -> str:
        """Why `patch_size` suits none of the checked volumes ("" if it suits): larger than all along an axis."""
        return patch_problem(report, self.patch_size, self.hparams.spacing, self.root)

    def split(self, case_ids: list[str]) -> DataSplit:
        """Test, train and validation case ids; a dataset with an official split (a meta.csv) overrides this."""
        h = self.hparams
        rest, test = carve_test(case_ids, h.test_fraction, h.seed)
        split = self.split_without_test(rest)
        return DataSplit(split.train, split.val, test, f"test_fraction {h.test_fraction:g} (seed {h.seed})" if test
                         else "none")

    def split_without_test(self, case_ids: list[str]) -> DataSplit:
        """Train and validation case ids of `case_ids` (`val_fraction`, or the `fold`), no test cases."""
        h = self.hparams
        train, val = split_cases(case_ids, h.val_fraction, h.seed, h.fold, h.num_folds)
        return DataSplit(train, val, [])

    def state_dict(self) -> dict:
        """Saved in every checkpoint: the split (a resume trains and validates, and `seg test` tests, on its cases)
        and the training position (epoch, batches trained in it), from which a resume continues inside the epoch."""
        state = self.data_split.as_state() if self.data_split else {}
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            batches = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)  # by each rank
            volumes = batches * self.volumes_per_batch() * int(trainer.world_size)  # of the epoch's permutation
            state["position"] = {"epoch": int(trainer.current_epoch), "batches": batches, "consumed": volumes,
                                 "world_size": int(trainer.world_size)}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Take the checkpoint's split (re-building the datasets if `setup` already ran with another) and position."""
        self.resume_position = state.get("position")
        self.restored_split = DataSplit.from_state(state)
        if self.data_split is not None and self.restored_split != self.data_split:
            self.setup(self._stage)

    def preprocessing_key(self) -> str:
        """A short hash of every setting that shapes the preprocessed volumes (the disk cache's key)."""
        return preprocessing_key(type(self).__name__, self.hparams)

    def _dataset(self, cases: list[dict], transform: mt.Compose) -> Dataset:
        folder = self.cache_folder() / f"preprocessed_{self.preprocessing_key()}"
        return cached_dataset(cases, transform, self.hparams.cache, folder)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of random patches: this rank's share, resumed inside the epoch a checkpoint stopped in."""
        start = self.first_epoch()
        position, self.resume_position = self.resume_position, None  # used by the first loader of a resumed fit
        consumed = position.get("consumed", 0) if position and position.get("epoch") == start else 0
        # cache: gpu slices tensors held on the device, which worker processes cannot share
        workers = 0 if self.hparams.cache == "gpu" else self.hparams.num_workers
        return training_loader(self.train_set, self.volumes_per_batch(), self.hparams.seed, self.train_transform, start,
                               self.hparams.cache in STORE_MODES, workers, getattr(self, "trainer", None), consumed)

    def volumes_per_batch(self) -> int:
        """Volumes a training batch draws its patches from (samples_per_volume patches come from each)."""
        return max(1, self.hparams.batch_size // self.hparams.samples_per_volume)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Lightning's hook, on the device: the store's compact training patches become float32 tensors and
        targets there (`patches.finish_patches`); other batches pass unchanged."""
        return finish_patches(batch, self.label_transform())

    def first_epoch(self) -> int:
        """The epoch training (re)starts at: what Lightning will pass to the sampler's `set_epoch`."""
        trainer = getattr(self, "trainer", None)
        return trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0

    def val_dataloader(self) -> DataLoader:
        """Whole validation volumes, one at a time (their shapes differ), each on one rank."""
        return volume_loader(self.val_set, self.hparams.num_workers, getattr(self, "trainer", None))

    def scored_cases(self) -> tuple[list[dict], str]:
        """The cases `seg test` scores and the name of their split (`test` unless `--data.test_on val`)."""
        if self.hparams.test_on == "val":
            return self.val_cases, "val"
        if not self.test_cases:
            raise SegError(
                f"no test cases: this run's split ({self.root}) holds none, and cases used for training or for "
                f"choosing best.ckpt are no test. Train with --data.test_fraction F (carved before the train/val "
                f"split), or score the validation cases with --data.test_on val (labelled val in the table and CSV)"
            )
        return self.test_cases, "test"

    def test_dataloader(self) -> DataLoader:
        """The scored cases as preprocessed images (metadata kept to invert predictions) and their label files."""
        cases, self.tested_split = self.scored_cases()
        items = [{"case": c["case"], "image": c["image"], "label_file": c["label"],
                  "source": str(first_image_path(c["image"]))} for c in cases]
        # kept: MONAI inverts a transform only with the very instances that applied it
        self.test_pipeline = self.predict_transform()
        return volume_loader(Dataset(items, self.test_pipeline), self.hparams.num_workers, getattr(self, "trainer", None))

    def predict_cases(self) -> list[dict]:
        """Images to predict: `predict_images` (files, folders, globs) if given, else every case of the dataset."""
        if self.hparams.predict_images:
            images = [image for entry in self.hparams.predict_images for image in images_of(entry)]
            return [{"case": p.name.split(".nii")[0], "image": str(p)} for p in images]
        return [{"case": c["case"], "image": c["image"]} for c in self.list_cases()]

    def predict_dataloader(self) -> DataLoader:
        """Whole images with their metadata, one at a time; `source` is the file whose geometry outputs take."""
        cases = [{**case, "source": str(first_image_path(case["image"]))} for case in self.predict_cases()]
        # kept: MONAI inverts a transform only with the very instances that applied it
        self.predict_pipeline = self.predict_transform()
        return volume_loader(Dataset(cases, self.predict_pipeline), self.hparams.num_workers,
                             getattr(self, "trainer", None))

