"""What a dataset module provides: its channels, classes, cases, intensity normalisation and label conventions.

`DatasetFacts` is the abstract half of every datamodule (`VolumeDataModule` is the other): a new dataset
implements the abstract members, and overrides the label hooks where its label files are not class maps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import torch
from monai import transforms as mt


class DatasetFacts(ABC):
    """The facts of one dataset layout that the shared datamodule, the model and the scorers build on."""

    dataset_name = "volumes"  # the first part of a run's name
    multilabel = False  # True: sigmoid regions (C masks) instead of softmax classes

    @property
    @abstractmethod
    def channel_names(self) -> list[str]:
        """Names of the image channels, in the order the network sees them."""

    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """Names of the foreground classes (or regions when `multilabel`)."""

    @abstractmethod
    def list_cases(self) -> list[dict]:
        """All labelled cases as dicts with `case` (id), `image` (path or list of paths) and `label`."""

    @abstractmethod
    def intensity_transform(self) -> mt.Transform:
        """The intensity normalisation of this dataset's modality."""

    @abstractmethod
    def label_values(self) -> set[int]:
        """The label values the dataset's label files may hold (checked up front)."""

    def prepare_sources(self) -> None:
        """Write what the dataset's files lack before its cases can be read (TotalSegmentator: the merged label
        maps); nothing by default. No cache or store is built here (`seg plan` and `seg check-data` read cases)."""
        return None

    def label_transform(self) -> Optional[mt.Transform]:
        """Turns the label file's values into the training target (e.g. BraTS regions); None keeps them."""
        return None

    def prediction_to_labels(self, prediction: torch.Tensor) -> torch.Tensor:
        """A discrete (1, X, Y, Z) class-index map (or (C, X, Y, Z) region masks when `multilabel`: such a dataset
        overrides this) as a (1, X, Y, Z) label map in the dataset's own label values."""
        return prediction.long()

    def labels_to_targets(self, labels: torch.Tensor) -> torch.Tensor:
        """A (1, X, Y, Z) label map in the dataset's own values as metrics compare it: an (X, Y, Z) class map (or
        (C, X, Y, Z) region masks when `multilabel`: such a dataset overrides this)."""
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

    def class_values(self) -> dict[str, tuple[int, ...]]:
        """Each class (or region) with the label values it covers, as `labels_to_targets` scores them: one value
        per class, several per BraTS region (postprocessing works on label maps with these)."""
        covered: dict[str, list[int]] = {name: [] for name in self.class_names}
        for value in sorted(self.label_values() - {0}):
            targets = self.labels_to_targets(torch.full((1, 1, 1, 1), value, dtype=torch.long))
            for index, name in enumerate(self.class_names):
                inside = bool(targets[index].any()) if self.multilabel else int(targets.flatten()[0]) == index + 1
                covered[name] += [value] if inside else []
        return {name: tuple(values) for name, values in covered.items()}
