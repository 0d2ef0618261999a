"""Mirror TTA (`model.tta`): the mean of the explicit flipped predictions, mirror-equivariant, one forward per
window batch (every flip in it), for softmax classes and sigmoid regions."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference

from segmentation.core.errors import SegError
from segmentation.model.ensemble import VolumeInference
from segmentation.model.module import SegmentationModule
from segmentation.model.tta import flip_sets, parse_axes

pytestmark = pytest.mark.unit
ROI = (16, 16, 16)
SIDE = 24  # windows at 0 and 8 of 24 (overlap 0.5): a mirror-symmetric grid


def small_model(multilabel: bool = False, seed: int = 0) -> SegmentationModule:
    """A tiny random UNet, validated in 16^3 windows at overlap 0.5."""
    torch.manual_seed(seed)
    model = SegmentationModule(in_channels=2, out_channels=3, multilabel=multilabel, roi_size=ROI, sw_batch_size=3,
                               sw_overlap=0.5, network_kwargs={"channels": [4, 8], "strides": [2], "num_res_units": 0})
    return model.eval()


def volume(seed: int = 1) -> torch.Tensor:
    return torch.randn((1, 2, SIDE, SIDE, SIDE), generator=torch.Generator().manual_seed(seed))


def explicit_flipped_mean(model: SegmentationModule, image: torch.Tensor, flips) -> torch.Tensor:
    """The mean over `flips` of: flip the volume, predict it whole (probabilities blended over windows), flip back."""
    total = torch.zeros((1, 3, SIDE, SIDE, SIDE))
    for dims in flips:
        source = image.flip(dims) if dims else image
        probabilities = sliding_window_inference(source, ROI, 3, lambda w: model.probabilities(model(w)),
                                                 overlap=0.5, mode="gaussian")
        total += probabilities.flip(dims) if dims else probabilities
    return total / len(flips)


def test_flip_sets_are_every_combination_of_the_axes_identity_first():
    assert flip_sets([0, 1, 2]) == [(), (2,), (3,), (2, 3), (4,), (2, 4), (3, 4), (2, 3, 4)]
    assert flip_sets(parse_axes("0,2")) == [(), (2,), (4,), (2, 4)]
    for bad in ("3", "", "x"):
        with pytest.raises(SegError, match="--tta_axes"):
            flip_sets(parse_axes(bad))


@pytest.mark.parametrize("axes", [[0, 1, 2], [0, 2]], ids=["8 flips", "4 flips"])
@pytest.mark.parametrize("multilabel", [False, True], ids=["softmax", "sigmoid regions"])
def test_tta_probabilities_are_the_mean_of_the_eight_explicit_flipped_predictions(multilabel, axes):
    model, image = small_model(multilabel), volume()
    flips = flip_sets(axes)
    with torch.no_grad():
        tta = VolumeInference(flips=flips)(model, image)
        expected = explicit_flipped_mean(model, image, flips)
        plain = model.probabilities(model.infer_volume(image))
    assert torch.allclose(tta, expected, atol=1e-5)
    assert not torch.allclose(tta, plain, atol=1e-3)  # (a random network is no mirror-symmetric function)


@pytest.mark.parametrize("multilabel", [False, True], ids=["softmax", "sigmoid regions"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_tta_on_a_flipped_input_gives_the_mirrored_label_map(axis, multilabel):
    model, image = small_model(multilabel), volume()
    inference = VolumeInference(flips=flip_sets([0, 1, 2]))
    with torch.no_grad():
        straight, mirrored = inference(model, image), inference(model, image.flip(axis + 2))
    assert torch.allclose(mirrored, straight.flip(axis + 2), atol=1e-5)
    label_dim = axis + 2 if multilabel else axis + 1  # ((B, C, X, Y, Z) region masks, (B, X, Y, Z) label maps)
    assert torch.equal(model.predicted_labels(mirrored), model.predicted_labels(straight).flip(label_dim))
    without = model.probabilities(model.infer_volume(image.flip(axis + 2)))
    assert not torch.allclose(without, model.probabilities(model.infer_volume(image)).flip(axis + 2), atol=1e-3)


def test_every_flip_of_a_window_batch_goes_through_the_network_in_one_forward():
    model, image = small_model(), volume()
    sizes: list[int] = []
    model.net.register_forward_hook(lambda module, args, output: sizes.append(len(args[0])))
    with torch.no_grad():
        model.infer_volume(image)
        plain, sizes[:] = list(sizes), []
        VolumeInference(flips=flip_sets([0, 1, 2]))(model, image)
    assert len(sizes) == len(plain) and sizes == [8 * size for size in plain]  # 8 windows' flips, one pass each
