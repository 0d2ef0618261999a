"""Architecture names -> MONAI networks with defaults that train on 3D patches, and what each needs.

Every architecture is one `Architecture` entry in `ARCHITECTURES`: its constructor with
seg's defaults, the multiple every patch axis must be, and a tiny configuration for
smoke runs (`seg batch --smoke`). Adding an architecture means adding an entry here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Sequence

import torch
from monai.networks.nets import UNETR, DynUNet, SegResNet, SwinUNETR, UNet
from torch import nn

from ..core.errors import SegError
from .topology import unet_topology


def _unet(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2, norm="instance")
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def _segresnet(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(init_filters=16, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), norm="instance")
    return SegResNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def dynunet_plan(roi_size: Sequence[int], spacing: Optional[Sequence[float]] = None) -> tuple[list, list]:
    """nnU-Net's kernels and strides for `roi_size` (`model.topology.unet_topology`; `spacing` None: isotropic)."""
    plan = unet_topology(spacing or [1.0] * len(roi_size), roi_size)
    return plan.kernels, plan.strides


def _dynunet(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    kernels, strides = dynunet_plan(roi_size)
    defaults = dict(
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        norm_name="instance",
        res_block=True,
    )
    return DynUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def _dynunet_deep_supervision(roi_size: Sequence[int], overrides: dict) -> dict:
    """DynUNet's deep-supervision arguments: heads down to the second-lowest decoder resolution (nnU-Net weights
    the lowest 0: `model.deep_supervision`), unless `deep_supr_num` is given."""
    levels = len(overrides.get("strides") or dynunet_plan(roi_size)[1])
    heads = int(overrides.get("deep_supr_num", levels - 3))
    if not 1 <= heads <= levels - 2:
        raise SegError(f"--model.deep_supervision: dynunet with {levels} levels on patch {list(roi_size)} has "
                       f"{max(levels - 3, 0)} lower resolution(s) to supervise (deep_supr_num {heads}); use a larger "
                       f"--data.patch_size or --model.deep_supervision false")
    return {"deep_supervision": True, "deep_supr_num": heads}


def _swinunetr(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(feature_size=24, use_v2=True)
    return SwinUNETR(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def _unetr(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12)
    return UNETR(in_channels=in_channels, out_channels=out_channels, img_size=tuple(roi_size), **{**defaults, **kwargs})


@dataclass(frozen=True)
class Architecture:
    """One architecture: how to build it, what patches it takes, and its tiny smoke-run size.

    Args:
        build: `(in_channels, out_channels, roi_size, **overrides) -> nn.Module` with seg's defaults.
        patch_multiple: every patch axis must be a multiple of this for the network to run.
        smoke_kwargs: `--model.network_kwargs` of a tiny network for smoke runs.
        deep_supervision: `(roi_size, overrides) -> constructor arguments` that add deep-supervision heads
            (`model.deep_supervision`); None where MONAI's network has none.
    """

    build: Callable[..., nn.Module]
    patch_multiple: int
    smoke_kwargs: dict = field(default_factory=dict)
    deep_supervision: Callable[[Sequence[int], dict], dict] | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "unet": Architecture(_unet, 16, {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0}),
    "segresnet": Architecture(_segresnet, 8, {"init_filters": 4, "blocks_down": [1, 1, 1], "blocks_up": [1, 1]}),
    "dynunet": Architecture(_dynunet, 1, {"filters": [4, 8, 16, 32]}, _dynunet_deep_supervision),
    "swinunetr": Architecture(_swinunetr, 32, {"feature_size": 12}),
    "unetr": Architecture(_unetr, 16, {"hidden_size": 96, "mlp_dim": 192, "num_heads": 4, "feature_size": 8}),
}
if TYPE_CHECKING:  # a Literal built at run time is no type to a checker: any name, checked by `architecture`
    ArchitectureName = str
else:  # the CLI's choices, from the registry
    ArchitectureName = Literal[tuple(ARCHITECTURES)]


def architecture(name: str) -> Architecture:
    """The registered architecture `name`; a SegError listing the valid names for an unknown one."""
    if name not in ARCHITECTURES:
        raise SegError(f"unknown architecture {name!r} (--model.architecture); valid names: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build_network(
    name: str,
    in_channels: int,
    out_channels: int,
    roi_size: Sequence[int],
    deep_supervision_heads: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build the MONAI network called `name`; `overrides` replace its constructor defaults;
    `deep_supervision_heads` adds the heads of `model.deep_supervision` (a SegError for an architecture without
    them)."""
    chosen = architecture(name)
    if "deep_supervision" in overrides:
        raise SegError("--model.network_kwargs: set deep supervision with --model.deep_supervision true|false")
    if deep_supervision_heads:
        if chosen.deep_supervision is None:
            with_heads = [key for key, entry in ARCHITECTURES.items() if entry.deep_supervision is not None]
            raise SegError(f"--model.deep_supervision: {name} has no deep-supervision heads; architectures with "
                           f"them: {', '.join(with_heads)}")
        overrides = {**overrides, **chosen.deep_supervision(roi_size, overrides)}
    elif "deep_supr_num" in overrides:
        raise SegError("--model.network_kwargs deep_supr_num needs --model.deep_supervision true")
    multiples = axis_multiples(name, overrides, len(roi_size))
    if any(size % multiple for size, multiple in zip(roi_size, multiples)):
        wanted = multiples[0] if len(set(multiples)) == 1 else multiples
        raise SegError(
            f"patch size {list(roi_size)} does not suit {name}: every axis must be a multiple of "
            f"{wanted} (set --data.patch_size)"
        )
    try:
        network = chosen.build(in_channels, out_channels, roi_size, **overrides)
    except TypeError as err:
        raise SegError(f"--model.network_kwargs {overrides} do not fit {name}: {err}") from None
    refuse_too_small_patch(name, in_channels, out_channels, roi_size, overrides)
    return network


def axis_multiples(name: str, overrides: dict, dims: int = 3) -> list[int]:
    """What each patch axis must be a multiple of: the product of the strides given per axis in `overrides` (a
    planned UNet or DynUNet: `seg plan`), else the architecture's `patch_multiple`."""
    strides = overrides.get("strides")
    if name in ("unet", "dynunet") and strides:
        per_axis = [[stride] * dims if isinstance(stride, int) else list(stride) for stride in strides]
        return [int(math.prod(stride[axis] for stride in per_axis)) for axis in range(dims)]
    return [ARCHITECTURES[name].patch_multiple] * dims


def shape_problem(name: str, in_channels: int, out_channels: int, roi_size: Sequence[int], overrides: dict) -> str:
    """Why a training step on `roi_size` patches fails in network `name` ("" if it runs, or if it cannot be told).

    The network is built and run on PyTorch's meta device: shapes are computed, nothing is allocated.
    """
    try:
        with torch.device("meta"):
            probe = ARCHITECTURES[name].build(in_channels, out_channels, roi_size, **overrides).train()
            probe(torch.zeros(2, in_channels, *roi_size))
    except Exception as err:  # a shape error of the network's own, raised by whichever layer meets it
        return "" if "meta" in str(err) else f"{type(err).__name__}: {str(err)[:160]}"
    return ""


def smallest_patch_side(name: str, in_channels: int, out_channels: int, overrides: dict, start: int = 1) -> int | None:
    """The smallest cube side (a multiple of the architecture's, from `start` on) network `name` runs on; None when
    none up to 512 voxels does."""
    multiple = ARCHITECTURES[name].patch_multiple
    first = -(-max(start, 1) // multiple) * multiple  # the next multiple of the architecture's patch multiple
    fitting = (size for size in range(first, 513, multiple)
               if not shape_problem(name, in_channels, out_channels, [size] * 3, overrides))
    return next(fitting, None)


def refuse_too_small_patch(name: str, in_channels: int, out_channels: int, roi_size: Sequence[int],
                           overrides: dict) -> None:
    """SegError when `roi_size` is too small for the network's depth (e.g. a bottleneck of one voxel per axis)."""
    problem = shape_problem(name, in_channels, out_channels, roi_size, overrides)
    if not problem:
        return
    smallest = smallest_patch_side(name, in_channels, out_channels, overrides, start=max(roi_size))
    hint = f"use at least [{smallest}, {smallest}, {smallest}]" if smallest else "use a larger patch"
    raise SegError(
        f"--data.patch_size {list(roi_size)} is too small for {name} at this depth ({problem}); {hint}, "
        f"or fewer levels with --model.network_kwargs"
    )
