"""The up-front dataset check: every broken case named before training starts, all problems at once."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from segmentation.core.errors import SegError
from segmentation.data.msd import MSDDataModule
from segmentation.data.synthetic import write

from ..helpers import DEMO_CONFIG, tiny_fit_args


@pytest.fixture()
def task(tmp_path):
    """A fresh 4-case demo task that a test may break."""
    return write("demo", tmp_path / "task", cases=4, shape=(16, 16, 16), seed=0)


def problems_of(root, patch_size=(16, 16, 16)) -> str:
    datamodule = MSDDataModule(str(root), num_workers=0, cache="none", patch_size=patch_size)
    with pytest.raises(SegError) as caught:
        datamodule.setup("fit")
    return str(caught.value)


def rewrite(path, transform):
    image = nib.load(str(path))
    data = transform(np.asanyarray(image.dataobj).copy())
    nib.save(nib.Nifti1Image(data, image.affine), str(path))


def set_voxel(data: np.ndarray, value) -> np.ndarray:
    data[8, 8, 8] = value
    return data


@pytest.mark.unit
def test_every_broken_case_is_named_together(task):
    (task / "imagesTr/demo_000.nii.gz").unlink()  # missing file
    rewrite(task / "labelsTr/demo_001.nii.gz", lambda d: set_voxel(d, 5))  # label 5, as in BraTS 2021's gap
    rewrite(task / "imagesTr/demo_002.nii.gz", lambda d: set_voxel(d.astype(np.float32), np.nan))
    rewrite(task / "labelsTr/demo_003.nii.gz", lambda d: d[:, :, :12])  # shape mismatch
    message = problems_of(task)
    assert "found 4 problem(s)" in message and "training was not started" in message
    assert "demo_000: " in message and "imagesTr/demo_000.nii.gz: image missing" in message
    assert "demo_001: " in message and "values [5.0] outside the declared set [0, 1, 2]" in message
    assert "demo_002: " in message and "NaN or Inf" in message
    assert "demo_003: " in message and "shape [16, 16, 12] differs from the image's [16, 16, 16]" in message


@pytest.mark.unit
def test_truncated_gzip_is_reported_not_crashed_on(task):
    path = task / "imagesTr/demo_002.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = problems_of(task)
    assert "demo_002.nii.gz: image unreadable, truncated or not NIfTI" in message


@pytest.mark.unit
def test_label_on_another_voxel_grid_is_reported(task):
    path = task / "labelsTr/demo_001.nii.gz"
    image = nib.load(str(path))
    shifted = image.affine.copy()
    shifted[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), shifted), str(path))
    assert "label affine differs from the image's" in problems_of(task)


@pytest.mark.unit
def test_float_label_files_with_integer_values_are_accepted(task):
    rewrite(task / "labelsTr/demo_000.nii.gz", lambda d: d.astype(np.float32))
    datamodule = MSDDataModule(str(task), num_workers=0, cache="none", patch_size=(16, 16, 16))
    datamodule.setup("fit")
    assert len(datamodule.train_cases) + len(datamodule.val_cases) == 4


@pytest.mark.unit
def test_dataset_json_entry_escaping_the_root_is_refused(task):
    meta = json.loads((task / "dataset.json").read_text())
    meta["training"][0]["image"] = "../../etc/passwd"
    (task / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(SegError, match="points outside the dataset root"):
        MSDDataModule(str(task), num_workers=0).setup("fit")


@pytest.mark.unit
def test_empty_folder_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegError, match="dataset.json not found"):
        MSDDataModule(str(tmp_path / "empty"))


def test_seg_fit_on_a_broken_dataset_exits_before_training(task, tmp_path, seg):
    (task / "labelsTr/demo_003.nii.gz").unlink()
    result = seg(*tiny_fit_args(task), cwd=tmp_path)
    assert result.returncode == 2
    assert "demo_003" in result.stderr and "label missing" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "lightning_logs").exists()  # not even an empty version_N


def test_check_data_prints_a_summary_and_caches_per_file(task, tmp_path, seg):
    result = seg("check-data", "--config", str(DEMO_CONFIG), f"--data.root={task}", cwd=tmp_path)
    assert result.returncode == 1 and (
        "patch: --data.patch_size [32, 32, 32] is larger than every volume" in result.stdout)
    result = seg("check-data", "--config", str(DEMO_CONFIG), f"--data.root={task}", "--data.patch_size=[16,16,16]",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cases: 4" in result.stdout and "[16, 16, 16] x4" in result.stdout and "problems: 0" in result.stdout
    assert (task / ".seg_cache/check_cache.json").is_file()
    rewrite(task / "labelsTr/demo_000.nii.gz", lambda d: set_voxel(d, 7))
    result = seg("check-data", "--config", str(DEMO_CONFIG), f"--data.root={task}", "--data.patch_size=[16,16,16]",
                 cwd=tmp_path)
    assert result.returncode == 1 and "values [7.0] outside" in result.stdout  # the changed file was re-read


@pytest.mark.unit
def test_dimensions_channels_and_link_loops_are_named_together(task):
    rewrite(task / "imagesTr/demo_000.nii.gz", lambda d: d[:, :, 8].copy())  # a 2D slice in a 3D task
    rewrite(task / "imagesTr/demo_001.nii.gz", lambda d: np.stack([d, d], axis=-1))  # 2 channels; the task has 1
    rewrite(task / "labelsTr/demo_002.nii.gz", lambda d: np.stack([d, d], axis=-1))  # a label with a 4th axis
    loop = task / "imagesTr/demo_003.nii.gz"
    loop.unlink()
    loop.symlink_to(loop.name)
    message = problems_of(task)
    assert "found 4 problem(s)" in message
    assert "demo_000.nii.gz: image has 2 dimensions [16, 16]: expected a 3D volume" in message
    assert "demo_001.nii.gz: image holds 2 channel(s) [16, 16, 16, 2], but the dataset declares 1" in message
    assert "demo_002.nii.gz: label has shape [16, 16, 16, 2]: expected a 3D volume (X, Y, Z)" in message
    assert "demo_003.nii.gz: image is a symbolic link loop" in message


@pytest.mark.unit
def test_a_dangling_link_says_where_it_points_and_a_good_link_is_followed(task, tmp_path):
    elsewhere = tmp_path / "other_disk"
    elsewhere.mkdir()
    image = task / "imagesTr/demo_000.nii.gz"
    image.rename(elsewhere / image.name)
    image.symlink_to(elsewhere / image.name)  # images on another disk: the owner's link, followed
    dangling = task / "labelsTr/demo_001.nii.gz"
    dangling.unlink()
    dangling.symlink_to(tmp_path / "gone.nii.gz")
    message = problems_of(task)
    assert "found 1 problem(s)" in message
    assert f"label is a symbolic link to {tmp_path / 'gone.nii.gz'}, which does not exist" in message


@pytest.mark.unit
def test_a_patch_larger_than_every_volume_is_refused_with_the_size_that_fits(task):
    message = problems_of(task, patch_size=(16, 16, 32))
    assert "--data.patch_size [16, 16, 32] is larger than every volume" in message
    assert "along Z (the largest is [16, 16, 16] voxels)" in message and "Use at most [16, 16, 16]" in message


@pytest.mark.unit
def test_a_corrupt_check_cache_is_rebuilt_with_a_warning(task, caplog):
    MSDDataModule(str(task), num_workers=0, cache="none", patch_size=(16, 16, 16)).setup("fit")
    cache = task / ".seg_cache/check_cache.json"
    entries = json.loads(cache.read_text())
    cache.write_text(cache.read_text()[:100])  # as a kill mid-write would have left it before writes were atomic
    MSDDataModule(str(task), num_workers=0, cache="none", patch_size=(16, 16, 16)).setup("fit")
    assert "check_cache.json is unreadable" in caplog.text  # (the seg logger's warning)
    assert json.loads(cache.read_text()) == entries
    assert not list(cache.parent.glob(".*.tmp-*"))
