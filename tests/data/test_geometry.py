"""Predictions back on the input's voxel grid: exact for a pure reorientation, smooth where training was coarser."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai import transforms as mt
from monai.data import decollate_batch

from segmentation.data.geometry import discrete_in_input_grid, save_in_input_geometry, undo_preprocessing
from segmentation.data.msd import MSDDataModule
from segmentation.data.pipelines import spatial_steps
from segmentation.data.synthetic.common import ellipsoid_mask

from ..helpers import dice_by_numpy, oblique_las_affine, write_oblique_case

pytestmark = pytest.mark.unit  # pure logic: no Trainer, no subprocess


def test_undoing_the_preprocessing_restores_the_input_grid(demo_root, tmp_path):
    source, label = write_oblique_case(tmp_path)
    datamodule = MSDDataModule(str(demo_root), spacing=None, predict_images=[str(source)], num_workers=0)
    loader = datamodule.predict_dataloader()
    batch = next(iter(loader))
    assert not np.array_equal(np.flip(label, 0), label)  # so only a correct inverse flip can restore it
    # a "perfect" prediction on the preprocessed grid: the label pushed through the same spatial steps
    pushed = torch.as_tensor(np.flip(label, 0).copy())  # LAS -> RAS flips the first axis
    one_hot = torch.nn.functional.one_hot(pushed.long(), 3).permute(3, 0, 1, 2).float()
    item = decollate_batch({"image": batch["image"], "pred": one_hot[None]})[0]
    pipeline = datamodule.inference_plan("predict").pipeline
    restored = datamodule.prediction_to_labels(discrete_in_input_grid(item, pipeline, False))
    assert np.array_equal(restored[0].numpy(), label)
    saved = nib.load(str(save_in_input_geometry(restored, source, tmp_path / "out.nii.gz")))
    original = nib.load(str(source))
    assert saved.shape == original.shape and np.allclose(saved.affine, original.affine)
    assert np.array_equal(np.asarray(saved.dataobj), label)


def test_probabilities_resampled_linearly_beat_nearest_neighbour_on_a_coarser_grid(demo_root, tmp_path, capsys):
    """A perfect model at 2x coarser spacing than an oblique, anisotropic input: its label (one-hot, resampled
    to the training grid like an image) brought back. Linear resampling of probabilities, then argmax, keeps
    Dice >= 0.95 against the original label; nearest-neighbour inversion of the discretised map scores lower."""
    shape = (64, 48, 16)
    label = np.zeros(shape, np.uint8)
    label[ellipsoid_mask(shape, (32, 24, 8), (20, 14, 5))] = 1  # an organ
    label[ellipsoid_mask(shape, (36, 22, 8), (6, 4, 1.8))] = 2  # a ~5 mm lesion
    affine = oblique_las_affine()
    nib.save(nib.Nifti1Image((label * 100 - 50).astype(np.int16), affine), tmp_path / "ct.nii.gz")
    one_hot = np.stack([(label == k).astype(np.float32) for k in range(3)], axis=-1)
    nib.save(nib.Nifti1Image(one_hot, affine), tmp_path / "one_hot.nii.gz")
    datamodule = MSDDataModule(str(demo_root), spacing=[1.8, 2.6, 3.1], predict_images=[str(tmp_path / "ct.nii.gz")],
                               num_workers=0)
    batch = next(iter(datamodule.predict_dataloader()))
    resample_like_an_image = mt.Compose(spatial_steps(["image"], datamodule.hparams.spacing))
    soft = torch.as_tensor(resample_like_an_image({"image": str(tmp_path / "one_hot.nii.gz")})["image"])
    assert soft.shape[1:] == batch["image"].shape[2:] and soft.shape[1] < shape[0]  # the coarser training grid

    item = decollate_batch({"image": batch["image"], "pred": soft[None]})[0]
    smooth = discrete_in_input_grid(item, datamodule.inference_plan("predict").pipeline, multilabel=False)[0].numpy()
    hard = torch.nn.functional.one_hot(soft.argmax(0), 3).permute(3, 0, 1, 2).float()
    item = decollate_batch({"image": batch["image"], "pred": hard[None]})[0]
    nearest = undo_preprocessing(item, datamodule.inference_plan("predict").pipeline, nearest=True).argmax(0).numpy()

    smooth_dice = [dice_by_numpy(smooth, label, value) for value in (1, 2)]
    nearest_dice = [dice_by_numpy(nearest, label, value) for value in (1, 2)]
    with capsys.disabled():
        print(f"\ninversion Dice (organ, lesion): linear probabilities {smooth_dice}, nearest-neighbour {nearest_dice}")
    assert np.mean(smooth_dice) >= 0.95
    assert all(s > n for s, n in zip(smooth_dice, nearest_dice))
