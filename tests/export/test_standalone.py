"""The standalone predictor's pieces equal MONAI's: importance map, window placement, orientation and resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai import transforms as mt
from monai.data import MetaTensor
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers import sliding_window_inference
from monai.inferers.utils import _get_scan_interval
from monai.networks.nets import DynUNet

from segmentation.export import standalone
from segmentation.export.network import example_windows, export_network, output_count

from ..helpers import oblique_las_affine

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("patch", [(16, 16, 16), (7, 12, 5)])
def test_the_gaussian_importance_map_is_monais(patch):
    expected = compute_importance_map(patch, mode="gaussian", sigma_scale=0.125).numpy()
    np.testing.assert_allclose(standalone.gaussian(list(patch), 0.125), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("size,patch,overlap", [(32, 16, 0.25), (45, 16, 0.5), (16, 16, 0.25), (97, 32, 0.6),
                                                (20, 7, 0.0)])
def test_window_starts_are_monais(size, patch, overlap):
    interval = _get_scan_interval((size,), (patch,), 1, (overlap,))
    expected = [s[0].start for s in dense_patch_slices((size,), (patch,), interval)]
    assert standalone.window_starts(size, patch, overlap) == expected


def test_sliding_window_blending_is_monais():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 21, 40, 9)).astype(np.float32)  # one axis smaller than the window: padded
    weight = torch.from_numpy(rng.normal(size=(3, 2, 1, 1, 1)).astype(np.float32))

    def network(windows: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv3d(windows, weight) + windows.mean(dim=(1, 2, 3, 4), keepdim=True)

    expected = sliding_window_inference(torch.from_numpy(image)[None], (16, 16, 16), 3, network, overlap=0.3,
                                        mode="gaussian")[0].numpy()
    window = {"patch_size": [16, 16, 16], "overlap": 0.3, "sigma_scale": 0.125, "batch_size": 3}
    got = standalone.sliding_window(image, lambda w: network(torch.from_numpy(w)).numpy(), window)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_orientation_spacing_and_their_inversion_are_monais():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(1, 30, 26, 14)).astype(np.float32)
    affine = oblique_las_affine()
    image = MetaTensor(torch.from_numpy(data), affine=torch.from_numpy(affine))
    pipeline = mt.Compose([mt.Orientation(axcodes="RAS"), mt.Spacing(pixdim=(1.5, 1.1, 2.0), mode="bilinear")])
    expected = pipeline(image)
    oriented, oriented_affine, transform = standalone.to_orientation(data, affine, "RAS")
    grid_affine, grid_shape = standalone.spacing_grid(oriented_affine, oriented.shape[1:], [1.5, 1.1, 2.0])
    got = standalone.resample(oriented, oriented_affine, grid_affine, grid_shape)
    np.testing.assert_allclose(grid_affine, expected.affine.numpy(), atol=1e-5)
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)
    inverse = pipeline.inverse(expected).numpy()
    back = standalone.from_orientation(standalone.resample(got, grid_affine, oriented_affine, oriented.shape[1:]),
                                       transform)
    np.testing.assert_allclose(back, inverse, rtol=1e-4, atol=1e-4)


def test_zscore_over_nonzero_voxels_is_monais():
    data = np.random.default_rng(2).normal(size=(2, 8, 9, 10)).astype(np.float32)
    data[:, :3] = 0
    expected = mt.NormalizeIntensity(nonzero=True, channel_wise=True)(torch.from_numpy(data.copy())).numpy()
    got = standalone.normalise(data, {"kind": "zscore", "nonzero": True})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_a_deeply_supervised_dynunet_exports_its_full_resolution_head_only(fmt, tmp_path):
    net = DynUNet(3, 1, 3, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2],
                  filters=[4, 8, 16], deep_supervision=True, deep_supr_num=1)
    path = tmp_path / ("net.ts" if fmt == "torchscript" else "net.onnx")
    assert export_network(net.train(), example_windows(1, [16, 16, 16], 2), fmt, path) < 1e-4
    assert output_count(path) == 1


class BraTSLike:
    """The label hooks of a BraTS datamodule (enhancing label 4), without its data folder."""

    @staticmethod
    def prediction_to_labels(prediction: torch.Tensor) -> torch.Tensor:
        from segmentation.data.brats import regions_to_labels

        return regions_to_labels(prediction, 4)


def test_brats_regions_are_written_back_as_seg_writes_them():
    from segmentation.data.brats import regions_to_labels
    from segmentation.export.contract import region_output

    output = region_output(BraTSLike(), ["tc", "wt", "et"], 3)
    assert [(r["name"], r["value"]) for r in output["regions"]] == [("wt", 2), ("tc", 1), ("et", 4)]
    probabilities = np.random.default_rng(4).uniform(size=(3, 9, 8, 7)).astype(np.float32)
    expected = regions_to_labels(torch.from_numpy(probabilities) > 0.5, 4)[0].numpy()
    np.testing.assert_array_equal(standalone.to_labels(probabilities, output), expected)
