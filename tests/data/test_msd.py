"""MSDDataModule: any Decathlon task from its dataset.json, 3D or 4D, and the liver config end to end."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from segmentation.data.msd import MSDDataModule
from segmentation.data.synthetic.common import lps_affine

from ..helpers import REPO, TINY_CONFIG, only_run_dir, scalars


def write_4d_mri_task(root, cases=4, shape=(16, 16, 16)):
    """A Task01_BrainTumour-like task: 4D images (X, Y, Z, 2 modalities), labels 0..2."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    training = []
    for i in range(cases):
        label = np.zeros(shape, np.uint8)
        label[4:10, 4:10, 4:10] = 1
        label[6:8, 6:8, 6:8] = 2
        image = np.stack([rng.normal(100 * (c + 1), 10, shape) + 50 * label for c in range(2)], axis=-1)
        image[:2] = 0  # background outside the "head": excluded from the z-score
        name = f"BRATS_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.float32), lps_affine((1, 1, 1), shape)), root / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, lps_affine((1, 1, 1), shape)), root / "labelsTr" / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "BrainTumour", "modality": {"0": "FLAIR", "1": "T1w"},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.mark.unit
def test_4d_images_give_one_channel_per_modality(tmp_path):
    datamodule = MSDDataModule(str(write_4d_mri_task(tmp_path / "Task01")), patch_size=(16, 16, 16),
                               batch_size=2, samples_per_volume=1, num_workers=0, cache="none")
    assert datamodule.channel_names == ["FLAIR", "T1w"] and datamodule.num_classes == 3
    assert datamodule.class_names == ["edema", "non-enhancing tumor"] and not datamodule.is_ct()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert tuple(batch["image"].shape) == (2, 2, 16, 16, 16) and tuple(batch["label"].shape) == (2, 1, 16, 16, 16)
    image = batch["image"][0]
    brain = image[0] != 0
    assert abs(float(image[0][brain].mean())) < 0.2  # z-scored over nonzero voxels, channel by channel


def test_liver_config_trains_on_the_synthetic_stand_in(tmp_path, seg):
    assert seg("synth", "msd", "--out", "liver", "--cases", "4", "--shape", "32", "32", "16",
               cwd=tmp_path).returncode == 0
    meta = json.loads((tmp_path / "liver/dataset.json").read_text())
    assert meta["name"] == "Liver" and meta["training"][0]["image"] == "./imagesTr/liver_0.nii.gz"
    assert nib.load(str(tmp_path / "liver/imagesTr/liver_0.nii.gz")).header.get_zooms() == (0.8, 0.8, 2.5)
    result = seg("fit", "--config", str(REPO / "configs/msd_liver.yaml"), "--config", str(TINY_CONFIG),
                 "--data.root=liver", "--data.cache=memory", "--trainer.max_epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run_dir(tmp_path / "lightning_logs")
    assert run.parent.name == "msd_liver_unet_reduce_on_plateau"
    assert scalars(run, "val/dice/liver") and scalars(run, "val/dice/cancer")
    assert "caching 4 cases in RAM" in result.log
