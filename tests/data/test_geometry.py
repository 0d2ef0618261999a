"""Undoing the preprocessing of a prediction restores the input's voxel grid, and the file takes its header."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
from monai.data import decollate_batch

from segmentation.data.geometry import save_in_input_geometry, undo_preprocessing
from segmentation.data.msd import MSDDataModule
from segmentation.data.synthetic.msd import ct_case


def oblique_las_affine() -> np.ndarray:
    """LAS axes, anisotropic 0.9 x 1.3 x 3.1 mm voxels, rotated 20 degrees about z, shifted."""
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.9, 1.3, 3.1])
    affine[:3, 3] = [31.5, -12.0, 7.25]
    return affine


def write_oblique_case(folder, shape=(30, 26, 14)):
    image, label = ct_case(np.random.default_rng(3), shape)
    affine = oblique_las_affine()
    nib.save(nib.Nifti1Image(image, affine), folder / "oblique_ct.nii.gz")
    nib.save(nib.Nifti1Image(label.astype(np.float32), affine), folder / "oblique_label.nii.gz")  # float labels
    return folder / "oblique_ct.nii.gz", label


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
    restored = datamodule.prediction_to_labels(undo_preprocessing(item, datamodule.predict_pipeline))
    assert np.array_equal(restored[0].numpy(), label)
    saved = nib.load(str(save_in_input_geometry(restored, source, tmp_path / "out.nii.gz")))
    original = nib.load(str(source))
    assert saved.shape == original.shape and np.allclose(saved.affine, original.affine)
    assert np.array_equal(np.asarray(saved.dataobj), label)
