"""Every architecture builds from MONAI and trains (forward + backward) on a small 3D patch."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from segmentation.core.errors import SegError
from segmentation.model.networks import ARCHITECTURES, build_network, dynunet_plan


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_architecture_runs_forward_and_backward(architecture):
    torch.manual_seed(0)
    # SwinUNETR's bottleneck (1/32 of the patch) must keep more than one voxel for instance norm
    roi = (64, 64, 64) if architecture == "swinunetr" else (32, 32, 32)
    net = build_network(architecture, in_channels=2, out_channels=3, roi_size=roi)
    image = torch.randn(1, 2, *roi)
    logits = net(image)
    assert logits.shape == (1, 3, *roi)
    logits.float().mean().backward()
    # MONAI's ViT blocks carry cross-attention norms that self-attention never uses
    params = {n: p for n, p in net.named_parameters() if "cross_attn" not in n}
    missing = [n for n, p in params.items() if p.grad is None or float(p.grad.abs().sum()) == 0]
    assert not missing


@pytest.mark.unit
def test_overrides_replace_constructor_defaults():
    net = build_network("unet", 1, 2, (16, 16, 16), channels=(4, 8, 16), strides=(2, 2), num_res_units=0)
    assert sum(p.numel() for p in net.parameters()) < 20_000


@pytest.mark.unit
def test_dynunet_plan_follows_the_patch():
    kernels, strides = dynunet_plan((128, 128, 32))
    assert strides[0] == [1, 1, 1] and len(kernels) == len(strides)
    # the short axis stops being halved once it reaches 4 voxels
    assert [s[2] for s in strides] == [1, 2, 2, 2, 1, 1]


@pytest.mark.unit
def test_unknown_architecture_lists_the_valid_names():
    with pytest.raises(SegError, match="valid names: unet, segresnet, dynunet, swinunetr, unetr"):
        build_network("vnet9000", 1, 2, (32, 32, 32))


@pytest.mark.unit
def test_unsuitable_patch_size_names_the_option():
    with pytest.raises(SegError, match="--data.patch_size"):
        build_network("swinunetr", 1, 2, (48, 48, 48))


@contextmanager
def parameters_on_meta():
    """Every parameter registered in the block lives on the meta device (shapes, no storage, no initialisation);
    other tensors (buffers, constants computed at construction) stay on the CPU, as some networks need."""
    register = torch.nn.Module.register_parameter

    def register_on_meta(module, name, parameter):
        register(module, name, None if parameter is None else
                 torch.nn.Parameter(parameter.to("meta"), requires_grad=parameter.requires_grad))

    torch.nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


@pytest.mark.unit
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_smoke_size_builds_a_tiny_network(architecture):
    """`seg batch --smoke` uses these: each must build and stay far smaller than the default network."""
    entry = ARCHITECTURES[architecture]
    roi = (max(32, 2 * entry.patch_multiple),) * 3  # SwinUNETR's bottleneck (1/32) needs 2 voxels for its norm
    tiny = build_network(architecture, 1, 2, roi, **entry.smoke_kwargs)
    with parameters_on_meta():  # parameter counts only: the full-size weights are never initialised
        full = build_network(architecture, 1, 2, roi)
    assert sum(p.numel() for p in tiny.parameters()) * 3 < sum(p.numel() for p in full.parameters())
    assert tiny(torch.zeros(1, 1, *roi)).shape == (1, 2, *roi)


@pytest.mark.unit
def test_a_patch_too_small_for_the_network_depth_is_refused_with_the_smallest_that_fits():
    # four stride-2 levels leave a 16^3 patch one voxel at the bottom, where instance norm cannot run
    with pytest.raises(SegError, match=r"--data.patch_size \[16, 16, 16\] is too small for unet at this depth "
                                       r"\(ValueError: Expected more than 1 spatial element"
                                       r".*use at least \[32, 32, 32\]"):
        build_network("unet", 4, 3, [16, 16, 16])
    assert build_network("unet", 4, 3, [32, 32, 32]) is not None
    assert build_network("unet", 4, 3, [16, 16, 16], channels=[4, 8, 16], strides=[2, 2], num_res_units=0)
