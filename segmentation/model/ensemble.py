"""Whole-volume probabilities of several models (an ensemble) and of mirrored inputs (TTA), averaged.

A `VolumeInference` is attached to the `SegmentationModule` that `seg test|predict` runs
(`SegmentationModule.volume_inference`); the module's own weights are the first member, the others are further
modules of the same classes and preprocessing (`training.ensembles` checks that). The probabilities of every
member (softmax classes, or sigmoid regions) are averaged on the preprocessed grid, which all members share;
`data.geometry` then resamples the mean to the input's grid and discretises it there. Averaging before that
inversion equals averaging after it: the inversion resamples each channel linearly (trilinear interpolation,
reorientation, padding and cropping: every output voxel is a fixed weighted sum of input voxels, the same
weights for every member), and a linear map commutes with the mean.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from .tta import mirrored


class VolumeInference:
    """The mean probabilities of `members` (besides the module it is attached to), each optionally under mirror TTA.

    Args:
        members: further `SegmentationModule`s, moved to the input's device on first use (kept in eval mode).
        flips: the flips of mirror TTA (`model.tta.flip_sets`); None or only the identity: no TTA.
    """

    def __init__(self, members: Sequence[Any] = (), flips: Optional[Sequence[tuple[int, ...]]] = None):
        self.members = list(members)
        self.flips = list(flips) if flips and list(flips) != [()] else None

    def model_probabilities(self, model: Any, image: torch.Tensor) -> torch.Tensor:
        """One model's whole-volume probabilities, under mirror TTA when it is on."""
        if self.flips is None:
            return model.probabilities(model.infer_volume(image))
        flips = self.flips
        return model.infer_volume(image, wrap=lambda forward: mirrored(forward, flips, model.probabilities))

    def __call__(self, model: Any, image: torch.Tensor) -> torch.Tensor:
        """The mean probabilities of `model` and every member for a batch of whole volumes."""
        total = self.model_probabilities(model, image).float()
        for member in self.members:
            member.to(image.device).eval()
            total += self.model_probabilities(member, image).float()
        return total / (1 + len(self.members))

    def describe(self) -> str:
        """What is averaged, in words (for the log)."""
        models = f"an ensemble of {1 + len(self.members)} models" if self.members else "one model"
        return f"{models}, " + (f"mirror TTA over {len(self.flips)} flips" if self.flips else "no TTA")
