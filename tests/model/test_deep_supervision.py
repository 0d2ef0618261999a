"""Deep supervision: nnU-Net's weighted sum over DynUNet's resolutions, each against a downsampled target; training
only. Expected values are computed here independently: MONAI's own record of its heads' outputs (`net.heads`),
targets downsampled by slicing, a fresh MONAI DiceCELoss per output, nnU-Net's weights written out."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from segmentation.core.errors import SegError
from segmentation.model.deep_supervision import head_outputs, nnunet_weights
from segmentation.model.module import SegmentationModule

pytestmark = pytest.mark.unit

# patch side -> DynUNet levels (model.networks.dynunet_plan): 32 -> 4 levels, 1 head; 64 -> 5 levels, 2 heads
FILTERS = {32: [4, 8, 16, 32], 64: [4, 8, 8, 16, 16]}
# nnU-Net v2 _build_loss for one output per decoder resolution (levels - 1), the lowest weighted 0, normalised
NNUNET = {32: [1, 0.5, 0], 64: [1, 0.5, 0.25, 0]}


def model(side: int, multilabel: bool = False, **kwargs) -> SegmentationModule:
    torch.manual_seed(0)
    return SegmentationModule("dynunet", in_channels=2, out_channels=3, multilabel=multilabel,
                              roi_size=(side, side, side), network_kwargs={"filters": FILTERS[side]},
                              deep_supervision=True, **kwargs)


def fixed_batch(side: int, multilabel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    image = torch.randn((2, 2, side, side, side), generator=generator)
    if multilabel:  # three overlapping regions (BraTS), one channel each
        label = (torch.rand((2, 3, side, side, side), generator=generator) > 0.6).float()
    else:  # a label map of classes 0..2
        label = torch.randint(0, 3, (2, 1, side, side, side), generator=generator).float()
    return image, label


def test_nnunet_weights_are_halved_per_resolution_the_lowest_dropped_and_normalised():
    assert nnunet_weights(3, 3) == pytest.approx([1 / 1.5, 0.5 / 1.5, 0.0])
    assert nnunet_weights(2, 3) == pytest.approx([1 / 1.5, 0.5 / 1.5])  # seg's heads stop above the lowest
    assert nnunet_weights(5, 5) == pytest.approx([1 / 1.875, 0.5 / 1.875, 0.25 / 1.875, 0.125 / 1.875, 0.0])
    assert sum(nnunet_weights(4, 6)) == pytest.approx(1.0)


@pytest.mark.parametrize("side, multilabel", [(32, False), (32, True), (64, False)])  # 64: two heads
def test_the_loss_is_the_weighted_sum_over_resolutions_against_downsampled_targets(side, multilabel):
    module = model(side, multilabel).train()
    image, label = fixed_batch(side, multilabel)
    stacked = module(image)
    loss = module.training_loss(stacked, label)

    heads = [stacked[:, 0]] + list(module.net.heads)  # MONAI's record of each head's output, before upsampling
    expected_weights = [w / sum(NNUNET[side]) for w in NNUNET[side]][:len(heads)]
    dice_ce = DiceCELoss(to_onehot_y=not multilabel, softmax=not multilabel, sigmoid=multilabel)
    expected = torch.zeros(())
    for k, (output, weight) in enumerate(zip(heads, expected_weights)):
        f = 2**k  # nearest-exact: the voxel nearest each output voxel's centre, f // 2 into each f-block
        target = label[:, :, f // 2::f, f // 2::f, f // 2::f] if f > 1 else label
        assert target.shape[2:] == output.shape[2:] == (side // f,) * 3
        expected = expected + weight * dice_ce(output, target)
    assert len(heads) == len(NNUNET[side]) - 1  # every resolution but the lowest (weighted 0) has a head
    assert torch.allclose(loss, expected, rtol=1e-6, atol=1e-7), (float(loss), float(expected))
    assert not torch.allclose(loss, dice_ce(stacked[:, 0], label))  # the heads count
    loss.backward()
    assert all(head.conv.conv.weight.grad is not None for head in module.net.deep_supervision_heads)


def test_the_heads_outputs_are_read_bitwise_from_monais_upsampled_stack():
    """MONAI upsamples each head by nearest neighbour; every f-th voxel is the head's own output (a MONAI upgrade
    that changes its upsampling fails here)."""
    module = model(64).train()
    stacked = module(fixed_batch(64, False)[0])
    outputs = head_outputs(stacked, module.deep_supervision.factors)
    assert module.deep_supervision.factors == [[2, 2, 2], [4, 4, 4]]
    assert all(torch.equal(ours, monais) for ours, monais in zip(outputs[1:], module.net.heads))


def test_evaluation_uses_the_full_resolution_output_alone():
    module = model(32).eval()
    image, label = fixed_batch(32, False)
    with torch.no_grad():
        logits = module(image)
        assert logits.shape == (2, 3, 32, 32, 32)  # no stacked heads
        probabilities = module.predict_step({"image": image[:1, ..., :24]}, 0)  # a whole (smaller) volume
    assert probabilities.shape == (1, 3, 32, 32, 24)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(1, 32, 32, 24), atol=1e-5)
    keys = set(module.state_dict())
    assert any("deep_supervision_heads" in key for key in keys)  # kept, though inference does not use them


def test_deep_supervision_is_refused_where_the_network_has_none_or_too_few_levels():
    with pytest.raises(SegError, match=r"--model.deep_supervision: unet has no deep-supervision heads; "
                                       r"architectures with them: dynunet"):
        SegmentationModule("unet", roi_size=(32, 32, 32), network_kwargs={"channels": [4, 8, 16], "strides": [2, 2]},
                           deep_supervision=True)
    with pytest.raises(SegError, match=r"--model.deep_supervision: dynunet with 3 levels on patch \[16, 16, 16\] "
                                       r"has 0 lower resolution"):
        SegmentationModule("dynunet", roi_size=(16, 16, 16), network_kwargs={"filters": [4, 8, 16]},
                           deep_supervision=True)
    with pytest.raises(SegError, match="--model.deep_supervision true"):
        SegmentationModule("dynunet", roi_size=(32, 32, 32), network_kwargs={"deep_supervision": True})
