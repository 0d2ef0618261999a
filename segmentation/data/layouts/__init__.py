"""Torch-free naming facts of each dataset's own folder layout (file names, label values, splits).

The datamodules read datasets through these, and the synthetic writers write them through
the same facts, so a file name is stated once. Nothing here imports torch, MONAI or Lightning.
"""
