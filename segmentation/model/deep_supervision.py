"""Deep supervision as nnU-Net trains it: each lower-resolution output against a downsampled target, weighted.

MONAI's DynUNet built with `deep_supervision=True` returns, in training mode, one tensor (B, 1 + N, C, ...):
the full-resolution output and its N deep-supervision heads, each head's output upsampled to full resolution
by nearest-neighbour interpolation (`torch.nn.functional.interpolate`'s default). nnU-Net instead compares
each lower-resolution output with a downsampled target. Nearest upsampling by a whole factor f repeats every
low-resolution voxel f times per axis, so every f-th voxel of the upsampled output (`[::f]` per axis) *is*
the head's own output, bitwise (tested in `tests/model/test_deep_supervision.py`): seg reads the heads'
outputs that way, through MONAI's public forward (compilable, no private attribute), and downsamples the
target as nnU-Net v2 does (batchgeneratorsv2 `DownsampleSegForDSTransform`: `interpolate(...,
mode='nearest-exact')` per channel: label maps and BraTS region channels alike).

The weights are nnU-Net v2's (`nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py`, `_build_loss`, lines
454-466 at commit 0e49508): `1 / 2**k` for the k-th resolution below full (`_get_deep_supervision_scales`,
lines 383-386: one output per decoder resolution, the bottleneck's excluded), the lowest decoder resolution's
weight set to 0, then normalised to sum 1. seg builds DynUNet with a head down to the second-lowest decoder
resolution only (`networks`), as the lowest one would be weighted 0; given one there too
(`--model.network_kwargs {deep_supr_num: ...}`), it is weighted 0 as in nnU-Net.

Training only: in evaluation mode DynUNet returns the full-resolution output alone, so validation,
prediction and export never touch the heads (their weights stay in the state dict).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import SegError


def nnunet_weights(outputs: int, decoder_resolutions: int) -> list[float]:
    """nnU-Net's loss weights of `outputs` outputs (full resolution first, each next one half as fine), for a
    network with `decoder_resolutions` decoder resolutions: 1 / 2**k, the lowest decoder resolution's 0,
    normalised to sum 1."""
    weights = [1 / 2**k for k in range(outputs)]
    if outputs == decoder_resolutions and outputs > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [weight / total for weight in weights]


def network_weights(net: nn.Module) -> list[float]:
    """The deep-supervision weights of a MONAI DynUNet built with deep supervision (its public constructor
    arguments `strides` and `deep_supr_num`): one per output, full resolution first."""
    return nnunet_weights(1 + len(head_factors(net)), len(_strides(net)) - 1)


def head_factors(net: nn.Module) -> list[list[int]]:
    """Per deep-supervision head of a MONAI DynUNet, its downsampling factor per axis below the full-resolution
    output: the product of the network's strides below its input block down to the head's level."""
    strides = _strides(net)
    factors, factor = [], [1] * len(strides[0])
    for level in range(1, 1 + int(getattr(net, "deep_supr_num", 0))):
        factor = [f * s for f, s in zip(factor, strides[level])]
        factors.append(factor)
    return factors


def _strides(net: nn.Module) -> list[list[int]]:
    strides = getattr(net, "strides", None)
    if not getattr(net, "deep_supervision", False) or strides is None:
        raise SegError(f"--model.deep_supervision: the network {type(net).__name__} has no deep-supervision heads")
    return [[s] * 3 if isinstance(s, int) else list(s) for s in strides]


def head_outputs(stacked: torch.Tensor, factors: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """The outputs of a deep-supervised DynUNet's training forward (B, 1 + N, C, X, Y, Z), each at its own
    resolution: the full-resolution one first, then each head's as the head computed it: every f-th voxel of
    MONAI's nearest-upsampled copy, `factors[k]` the k-th head's downsampling factors per axis."""
    outputs = [stacked[:, 0]]
    for k, factor in enumerate(factors, start=1):
        index = (slice(None), slice(None)) + tuple(slice(None, None, f) for f in factor)
        outputs.append(stacked[:, k][index])
    return outputs


def downsampled_target(label: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """`label` (B, C, ...: a label map or region channels) at `shape` by nearest neighbour, per channel, as
    nnU-Net v2 downsamples its targets (`mode='nearest-exact'`: the voxel nearest each output voxel's centre)."""
    if tuple(label.shape[2:]) == tuple(shape):
        return label
    return F.interpolate(label.float(), size=tuple(shape), mode="nearest-exact").to(label.dtype)


class DeepSupervisionLoss:
    """`loss` summed over a deep-supervised network's outputs against targets downsampled to each, weighted.

    Args:
        loss: the loss of one output and its target (MONAI DiceCE).
        weights: one weight per output, full resolution first (`network_weights`).
        factors: each head's downsampling factors per axis (`head_factors`).
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], weights: Sequence[float],
                 factors: Sequence[Sequence[int]]):
        self.loss, self.weights, self.factors = loss, list(weights), [list(f) for f in factors]

    @classmethod
    def of_network(cls, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   net: nn.Module) -> DeepSupervisionLoss:
        """The deep-supervision loss of a MONAI DynUNet built with deep supervision."""
        return cls(loss, network_weights(net), head_factors(net))

    def __call__(self, stacked: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The weighted loss of the stacked training output (B, 1 + N, C, ...) against the full-size `label`."""
        if stacked.ndim != 6 or stacked.shape[1] != len(self.weights):
            raise SegError(f"--model.deep_supervision: the network gave an output of shape {tuple(stacked.shape)}, "
                           f"not (B, {len(self.weights)}, C, X, Y, Z)")
        outputs = head_outputs(stacked, self.factors)
        total = stacked.new_zeros(())
        for output, weight in zip(outputs, self.weights):
            if weight:
                total = total + weight * self.loss(output, downsampled_target(label, output.shape[2:]))
        return total
