"""seg: train 3D medical segmentation networks with Lightning and MONAI."""

__version__ = "0.1.0"
