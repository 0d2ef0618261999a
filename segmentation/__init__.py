"""seg: train 3D medical segmentation networks with Lightning and MONAI."""

from .core.constants import VERSION as __version__

__all__ = ["__version__"]
