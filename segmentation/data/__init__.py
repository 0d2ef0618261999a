"""Dataset modules: one LightningDataModule per dataset folder layout."""

from .base import VolumeDataModule
from .msd import MSDDataModule

__all__ = ["VolumeDataModule", "MSDDataModule"]
