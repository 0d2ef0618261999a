"""The validation loss on whole volumes without a one-hot target: MONAI's DiceCE, computed from a label map.

MONAI's `DiceCELoss(to_onehot_y=True, softmax=True)` expands the target to one channel per class:
on a whole CT with 100+ classes that copy is gigabytes. `label_map_dice_ce` computes the same value
(tested against MONAI) from the per-class sums a label map gives directly: the softmax probability
of each voxel's true class, summed per class (`bincount` with weights), the probabilities summed per
class, and the voxel count per class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1e-5  # MONAI DiceLoss's smooth_nr and smooth_dr defaults


def label_map_dice_ce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """MONAI DiceCELoss (softmax, one-hot target, background included, means over batch and classes) of
    `logits` (B, C, ...) against the label map `label` (B, 1, ...) of class indices."""
    classes = logits.shape[1]
    target = label[:, 0].long()
    cross_entropy = F.cross_entropy(logits, target)
    probabilities = torch.softmax(logits.float(), dim=1)
    dice_losses = []
    for case in range(logits.shape[0]):
        flat_target = target[case].flatten()
        flat_probabilities = probabilities[case].flatten(1)
        true_class_probability = flat_probabilities.gather(0, flat_target[None])[0]
        intersection = sums_per_class(true_class_probability, flat_target, classes)
        ground_truth = sums_per_class(torch.ones_like(true_class_probability), flat_target, classes)
        predicted = flat_probabilities.sum(dim=1)
        dice_losses.append(1.0 - (2.0 * intersection + SMOOTH) / (ground_truth + predicted + SMOOTH))
    return torch.stack(dice_losses).mean() + cross_entropy


def sums_per_class(values: torch.Tensor, classes_of_voxels: torch.Tensor, classes: int) -> torch.Tensor:
    """The sum of `values` over the voxels of each class (index_add; a loop where CUDA must be deterministic)."""
    if values.is_cuda and torch.are_deterministic_algorithms_enabled():
        return torch.stack([values[classes_of_voxels == c].sum() for c in range(classes)])
    return torch.zeros(classes, dtype=values.dtype, device=values.device).index_add_(0, classes_of_voxels, values)
