"""Dataset modules: one LightningDataModule per dataset folder layout."""

from .base import VolumeDataModule
from .brats import BraTSDataModule
from .msd import MSDDataModule
from .totalseg import TotalSegmentatorDataModule

__all__ = ["VolumeDataModule", "MSDDataModule", "BraTSDataModule", "TotalSegmentatorDataModule"]
