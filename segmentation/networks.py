"""Architecture names -> MONAI networks with defaults that train on 3D patches."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from monai.networks.nets import UNETR, DynUNet, SegResNet, SwinUNETR, UNet
from torch import nn

from .errors import SegError


def _unet(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2, norm="instance")
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def _segresnet(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(init_filters=16, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), norm="instance")
    return SegResNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def dynunet_plan(roi_size: Sequence[int], min_size: int = 4, max_levels: int = 6) -> tuple[list, list]:
    """nnU-Net-style kernels and strides: halve each axis while it stays >= 2 * min_size."""
    sizes = list(roi_size)
    kernels, strides = [[3, 3, 3]], [[1, 1, 1]]
    while len(strides) < max_levels:
        stride = [2 if size >= 2 * min_size else 1 for size in sizes]
        if stride == [1, 1, 1]:
            break
        sizes = [size // s for size, s in zip(sizes, stride)]
        strides.append(stride)
        kernels.append([3, 3, 3])
    return kernels, strides


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


def _swinunetr(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(feature_size=24, use_v2=True)
    return SwinUNETR(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, **{**defaults, **kwargs})


def _unetr(in_channels: int, out_channels: int, roi_size: Sequence[int], **kwargs: Any) -> nn.Module:
    defaults = dict(feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12)
    return UNETR(in_channels=in_channels, out_channels=out_channels, img_size=tuple(roi_size), **{**defaults, **kwargs})


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "unet": _unet,
    "segresnet": _segresnet,
    "dynunet": _dynunet,
    "swinunetr": _swinunetr,
    "unetr": _unetr,
}

# Each axis of a patch must be a multiple of this for the architecture to run.
PATCH_MULTIPLE = {"unet": 16, "segresnet": 8, "dynunet": 1, "swinunetr": 32, "unetr": 16}


def build_network(
    architecture: str,
    in_channels: int,
    out_channels: int,
    roi_size: Sequence[int],
    **overrides: Any,
) -> nn.Module:
    """Build the MONAI network called `architecture`; `overrides` replace its constructor defaults."""
    if architecture not in ARCHITECTURES:
        raise SegError(
            f"unknown architecture {architecture!r} (--model.architecture); valid names: {', '.join(ARCHITECTURES)}"
        )
    multiple = PATCH_MULTIPLE[architecture]
    if any(size % multiple for size in roi_size):
        raise SegError(
            f"patch size {list(roi_size)} does not suit {architecture}: every axis must be a multiple of "
            f"{multiple} (set --data.patch_size)"
        )
    try:
        return ARCHITECTURES[architecture](in_channels, out_channels, roi_size, **overrides)
    except TypeError as err:
        raise SegError(f"--model.network_kwargs {overrides} do not fit {architecture}: {err}") from None
