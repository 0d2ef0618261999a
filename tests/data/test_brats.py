"""BraTS: region targets for both label conventions, layout detection, the synthetic writers, a `seg fit` run."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from monai import transforms as mt

from segmentation.core.errors import SegError
from segmentation.data.brats import BraTSDataModule
from segmentation.data.synthetic.brats import write_brats2021, write_brats2023

from ..helpers import REPO, TINY_CONFIG, only_run_dir, scalars

BRATS_CONFIG = REPO / "configs" / "brats.yaml"
TINY_DATA = dict(patch_size=(16, 16, 16), batch_size=2, samples_per_volume=1, val_fraction=0.34, num_workers=0)

# file names of case 0, written out by hand (not derived from the module under test)
NAMES_2021 = ("BraTS2021_00000", [f"BraTS2021_00000_{s}.nii.gz" for s in ("t1", "t1ce", "t2", "flair")],
              "BraTS2021_00000_seg.nii.gz")
NAMES_2023 = ("BraTS-GLI-00000-000", [f"BraTS-GLI-00000-000-{s}.nii.gz" for s in ("t1n", "t1c", "t2w", "t2f")],
              "BraTS-GLI-00000-000-seg.nii.gz")

# a 2x2x2 label map holding every label once or twice (E = the enhancing value), and its regions by hand
LABELS = [[[0, 1], [2, "E"]], [["E", 2], [1, 0]]]
TC = [[[0, 1], [0, 1]], [[1, 0], [1, 0]]]
WT = [[[0, 1], [1, 1]], [[1, 1], [1, 0]]]
ET = [[[0, 0], [0, 1]], [[1, 0], [0, 0]]]


def hand_built_labels(enhancing: int) -> np.ndarray:
    """`LABELS` with E replaced by the enhancing value of a convention."""
    return np.array([[[enhancing if v == "E" else v for v in row] for row in plane] for plane in LABELS], np.uint8)


def write_hand_built_case(root: Path, names: tuple, enhancing: int) -> None:
    """One 2x2x2 case in a layout's naming: the hand-built labels, four images zero at voxel (0, 0, 0)."""
    case, images, label = names
    (root / case).mkdir(parents=True)
    affine = np.eye(4)  # RAS already: the reorientation leaves the voxel order alone
    for channel, name in enumerate(images):
        image = np.arange(8, dtype=np.int16).reshape(2, 2, 2) * (channel + 1) * 10
        nib.save(nib.Nifti1Image(image, affine), root / case / name)
    nib.save(nib.Nifti1Image(hand_built_labels(enhancing), affine), root / case / label)


def touch_case(root: Path, names: tuple, skip: str = "") -> None:
    """A case folder with empty files of the layout's names (enough for detection and listing)."""
    case, images, label = names
    (root / case).mkdir(parents=True)
    for name in [*images, label]:
        if name != skip:
            (root / case / name).touch()


@pytest.mark.unit
@pytest.mark.parametrize("names, enhancing", [(NAMES_2021, 4), (NAMES_2023, 3)], ids=["2021", "2023"])
def test_labels_become_regions_voxel_by_voxel_and_back(tmp_path, names, enhancing):
    write_hand_built_case(tmp_path, names, enhancing)
    data = BraTSDataModule(str(tmp_path), cache="none", **TINY_DATA)
    case = mt.Compose(data.preprocessing())(data.list_cases()[0])
    assert case["label"].shape == (3, 2, 2, 2) and case["label"].dtype == torch.float32
    for channel, expected in enumerate((TC, WT, ET)):
        assert case["label"][channel].tolist() == expected, data.class_names[channel]
    image = case["image"]
    assert image.shape == (4, 2, 2, 2)
    assert (image[:, 0, 0, 0] == 0).all()  # background stays zero; the z-score is over brain voxels
    brain = image.reshape(4, -1)[:, 1:]
    assert torch.allclose(brain.mean(dim=1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(brain.std(dim=1, unbiased=False), torch.ones(4), atol=1e-4)
    back = data.prediction_to_labels(case["label"])
    assert back.shape == (1, 2, 2, 2)
    assert back[0].tolist() == hand_built_labels(enhancing).tolist()


@pytest.mark.unit
@pytest.mark.parametrize("names, enhancing", [(NAMES_2021, 4), (NAMES_2023, 3)], ids=["2021", "2023"])
def test_predictions_become_nested_labels(tmp_path, names, enhancing):
    touch_case(tmp_path, names)
    data = BraTSDataModule(str(tmp_path), **TINY_DATA)
    # voxels: none, WT only, TC only, ET only, TC+WT, all three
    tc = [0, 0, 1, 0, 1, 1]
    wt = [0, 1, 0, 0, 1, 1]
    et = [0, 0, 0, 1, 0, 1]
    prediction = torch.tensor([tc, wt, et], dtype=torch.float32).reshape(3, 6, 1, 1)
    labels = data.prediction_to_labels(prediction)
    assert labels.shape == (1, 6, 1, 1)
    assert labels.flatten().tolist() == [0, 2, 1, enhancing, 1, enhancing]


@pytest.mark.unit
@pytest.mark.parametrize(
    "names, layout, channels, values",
    [
        (NAMES_2021, "BraTS 2021", ["t1", "t1ce", "t2", "flair"], {0, 1, 2, 4}),
        (NAMES_2023, "BraTS 2023+", ["t1n", "t1c", "t2w", "t2f"], {0, 1, 2, 3}),
    ],
    ids=["2021", "2023"],
)
def test_layout_detection_lists_cases_in_channel_order(tmp_path, names, layout, channels, values):
    touch_case(tmp_path, names, skip=names[1][2])  # the T2 file is missing: listed anyway
    (tmp_path / "name_mapping.csv").touch()  # the archives' extra files are no cases
    data = BraTSDataModule(str(tmp_path), **TINY_DATA)
    assert data.layout.name == layout
    assert data.channel_names == channels and data.label_values() == values
    assert (data.multilabel, data.class_names, data.num_channels, data.num_classes) == (True, ["tc", "wt", "et"], 4, 3)
    [case] = data.list_cases()
    assert case["case"] == names[0]
    assert case["image"] == [str(tmp_path / names[0] / name) for name in names[1]]
    assert case["label"] == str(tmp_path / names[0] / names[2])


@pytest.mark.unit
def test_unrecognised_and_mixed_folders_are_refused_by_name(tmp_path):
    (tmp_path / "other" / "patient_001").mkdir(parents=True)
    with pytest.raises(SegError) as unrecognised:
        BraTSDataModule(str(tmp_path / "other"), **TINY_DATA)
    message = str(unrecognised.value)
    assert str(tmp_path / "other") in message
    assert "BraTS2021_00000/BraTS2021_00000_" in message and "BraTS-GLI-00000-000/BraTS-GLI-00000-000-" in message
    touch_case(tmp_path / "archive" / "BraTS2021_Training_Data", NAMES_2021)  # unpacked one level too high
    with pytest.raises(SegError, match="point --data.root there") as nested:
        BraTSDataModule(str(tmp_path / "archive"), **TINY_DATA)
    assert str(tmp_path / "archive" / "BraTS2021_Training_Data") in str(nested.value)
    touch_case(tmp_path / "mixed", NAMES_2021)
    touch_case(tmp_path / "mixed", NAMES_2023)
    with pytest.raises(SegError, match="mixes BraTS layouts") as mixed:
        BraTSDataModule(str(tmp_path / "mixed"), **TINY_DATA)
    assert str(tmp_path / "mixed") in str(mixed.value)


@pytest.mark.unit
def test_a_case_that_is_a_file_is_named_not_skipped(tmp_path):
    touch_case(tmp_path, NAMES_2021)
    (tmp_path / "BraTS2021_00001").write_text("an archive that was never unpacked")
    with pytest.raises(SegError, match=r"BraTS2021_00001 is named like a BraTS case but is not a folder"):
        BraTSDataModule(str(tmp_path), **TINY_DATA)


@pytest.mark.unit
@pytest.mark.parametrize("empty", [False, True], ids=["missing", "empty"])
def test_missing_or_empty_root_suggests_synth(tmp_path, empty):
    root = tmp_path / "brats"
    if empty:
        root.mkdir()
    with pytest.raises(SegError) as error:
        BraTSDataModule(str(root), **TINY_DATA)
    assert str(root) in str(error.value) and f"seg synth brats --out {root}" in str(error.value)
    assert root.exists() == empty and (not empty or not any(root.iterdir()))  # a datamodule never writes data


@pytest.mark.parametrize(
    "kind, names, enhancing", [("brats", NAMES_2021, 4), ("brats2023", NAMES_2023, 3)], ids=["2021", "2023"]
)
def test_seg_synth_writes_the_real_file_names(tmp_path, kind, names, enhancing, seg):
    result = seg("synth", kind, "--out", "out", "--cases", "2", "--shape", "32", "32", "32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    case, images, label = names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [case, case.replace("00000", "00001")]
    assert sorted(p.name for p in (tmp_path / "out" / case).iterdir()) == sorted([*images, label])
    seg = nib.load(tmp_path / "out" / case / label)
    labels = np.asarray(seg.dataobj)
    assert set(np.unique(labels)) == {0, 1, 2, enhancing}
    assert not np.allclose(seg.affine, np.eye(4)) and np.allclose(np.abs(np.diag(seg.affine)[:3]), 1.0)
    t1, t1c, _, flair = (np.asarray(nib.load(tmp_path / "out" / case / name).dataobj) for name in images)
    assert t1[0, 0, 0] == 0 and (t1[labels > 0] > 0).all()  # zero outside the brain, signal inside
    healthy = (labels == 0) & (t1 > 0)
    assert t1c[labels == enhancing].mean() > 1.5 * t1c[healthy].mean()  # the rim enhances
    assert flair[labels == 2].mean() > 1.5 * flair[healthy].mean()  # edema is bright on FLAIR


@pytest.mark.parametrize("write, layout", [(write_brats2021, "BraTS 2021"), (write_brats2023, "BraTS 2023+")],
                         ids=["2021", "2023"])
def test_seg_fit_on_brats_logs_the_region_dice(tmp_path, write, layout, seg):
    root = write(tmp_path / "brats", cases=6, shape=(32, 32, 32), seed=0)  # 4 train, 2 validation
    result = seg(
        "fit", "--config", str(BRATS_CONFIG), "--config", str(TINY_CONFIG), "--data.root", str(root), cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{layout} layout" in result.log
    run = only_run_dir(tmp_path / "lightning_logs")
    assert run.parent.name == "brats_unet_reduce_on_plateau"
    linked = yaml.safe_load((run / "hparams.yaml").read_text())
    assert (linked["in_channels"], linked["out_channels"], linked["class_names"], linked["multilabel"]) == (
        4, 3, ["tc", "wt", "et"], True
    )
    for region in ("tc", "wt", "et"):
        values = [value for _, value in scalars(run, f"val/dice/{region}")]
        assert len(values) == 2 and all(0.0 <= v <= 1.0 and not math.isnan(v) for v in values), (region, values)


@pytest.mark.unit
def test_list_cases_refuses_a_root_removed_after_construction(tmp_path):
    touch_case(tmp_path / "brats", NAMES_2021)
    data = BraTSDataModule(str(tmp_path / "brats"), **TINY_DATA)
    shutil.rmtree(tmp_path / "brats")
    with pytest.raises(SegError, match="seg synth brats --out"):
        data.list_cases()


@pytest.mark.unit
def test_the_up_front_check_names_a_missing_modality_and_label_5(tmp_path):
    root = write_brats2021(tmp_path / "brats", cases=3, shape=(16, 16, 16), seed=0)
    (root / "BraTS2021_00001/BraTS2021_00001_t2.nii.gz").unlink()
    seg = root / "BraTS2021_00002/BraTS2021_00002_seg.nii.gz"
    image = nib.load(str(seg))
    data = np.asanyarray(image.dataobj).copy()
    data[8, 8, 8] = 5  # the gap in BraTS 2021's labels (1, 2, 4)
    nib.save(nib.Nifti1Image(data, image.affine), str(seg))
    with pytest.raises(SegError) as caught:
        BraTSDataModule(str(root), num_workers=0, cache="none").setup("fit")
    message = str(caught.value)
    assert "BraTS2021_00001: " in message and "BraTS2021_00001_t2.nii.gz: image missing" in message
    assert "BraTS2021_00002: " in message and "values [5.0] outside the declared set [0, 1, 2, 4]" in message
