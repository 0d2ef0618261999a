"""TotalSegmentatorDataModule: version detection, class merge and its cache, split, errors, `seg synth totalseg`,
a run."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from segmentation.core.errors import SegError
from segmentation.data.layouts.totalseg import CLASSES_V1, CLASSES_V2
from segmentation.data.split import split_cases
from segmentation.data.synthetic.common import lps_affine
from segmentation.data.totalseg import TotalSegmentatorDataModule

from ..helpers import REPO, TINY_CONFIG, scalars, seg_in_process

TOTALSEG_CONFIG = REPO / "configs" / "totalseg.yaml"
SHAPE = (8, 8, 8)
AFFINE = lps_affine((1.5, 1.5, 3.0), SHAPE)

# hand-placed voxels of three classes, one voxel where liver and spleen overlap, and one unchosen class
MARKS = {
    "liver": [(1, 1, 1), (1, 2, 1), (4, 4, 4)],
    "spleen": [(6, 6, 6), (4, 4, 4)],
    "kidney_left": [(2, 6, 3)],
    "stomach": [(5, 1, 2)],
}


def write_hand_case(root: Path, case: str, marks: dict, names=CLASSES_V2) -> None:
    """One tiny case in the TotalSegmentator layout: a CT and one mask per name, with `marks` set to 1."""
    folder = root / case / "segmentations"
    folder.mkdir(parents=True)
    ct = np.random.default_rng(0).integers(-1000, 1000, SHAPE).astype(np.int16)
    nib.save(nib.Nifti1Image(ct, AFFINE), root / case / "ct.nii.gz")
    for name in names:
        mask = np.zeros(SHAPE, np.uint8)
        for voxel in marks.get(name, []):
            mask[voxel] = 1
        nib.save(nib.Nifti1Image(mask, AFFINE), folder / f"{name}.nii.gz")


def hand_dataset(root: Path, cases: int, meta: dict | None = None) -> Path:
    """`cases` hand-built cases s0000.. with `MARKS`, and a meta.csv of `meta` (image_id -> split) if given."""
    for index in range(cases):
        write_hand_case(root, f"s{index:04d}", MARKS)
    if meta is not None:
        rows = ["image_id;age;split"] + [f"{case};50;{split}" for case, split in meta.items()]
        (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return root


def datamodule(root: Path, classes, **kwargs) -> TotalSegmentatorDataModule:
    """The datamodule with small, uncached settings."""
    settings = {"patch_size": (8, 8, 8), "cache": "none", "num_workers": 0, **kwargs}
    return TotalSegmentatorDataModule(str(root), classes=classes, **settings)


def merged(dm: TotalSegmentatorDataModule, case: str) -> np.ndarray:
    """The merged label map of `case` as written by `setup`."""
    label = next(c["label"] for c in dm.list_cases() if c["case"] == case)
    return np.asanyarray(nib.load(label).dataobj)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    """Four 32^3 cases written by `seg synth totalseg`."""
    out = tmp_path_factory.mktemp("totalseg")
    assert seg_in_process(["synth", "totalseg", "--out", str(out), "--cases", "4", "--shape", "32", "32", "32"]) == 0
    return out


@pytest.mark.unit
def test_merge_maps_each_class_to_its_index_voxel_by_voxel(tmp_path):
    dm = datamodule(hand_dataset(tmp_path, 2), ["liver", "spleen", "kidney_left"])
    assert dm.version == "v2" and dm.class_names == ["liver", "spleen", "kidney_left"]
    assert dm.label_values() == {0, 1, 2, 3} and dm.num_classes == 4 and not dm.multilabel
    dm.setup("fit")
    expected = np.zeros(SHAPE, np.uint8)
    for value, name in enumerate(["liver", "spleen", "kidney_left"], start=1):
        for voxel in MARKS[name]:
            expected[voxel] = value  # the later class wins the overlap at (4, 4, 4)
    label = merged(dm, "s0000")
    np.testing.assert_array_equal(label, expected)
    assert label[5, 1, 2] == 0  # stomach was not chosen
    np.testing.assert_allclose(nib.load(dm.list_cases()[0]["label"]).affine, AFFINE)


@pytest.mark.unit
def test_a_changed_class_list_rebuilds_the_merge(tmp_path):
    root = hand_dataset(tmp_path, 2)
    first = datamodule(root, ["liver", "spleen"])
    first.setup("fit")
    swapped = datamodule(root, ["spleen", "liver"])
    swapped.setup("fit")
    assert first.merge_dir != swapped.merge_dir
    assert merged(first, "s0000")[1, 1, 1] == 1 and merged(swapped, "s0000")[1, 1, 1] == 2  # liver
    assert merged(first, "s0000")[6, 6, 6] == 2 and merged(swapped, "s0000")[6, 6, 6] == 1  # spleen
    # a mask edited after the merge makes that case's merge stale: it is rebuilt, not reused
    liver_path = root / "s0001" / "segmentations" / "liver.nii.gz"
    liver = np.zeros(SHAPE, np.uint8)
    liver[7, 7, 7] = 1
    nib.save(nib.Nifti1Image(liver, AFFINE), liver_path)
    later = os.stat(first.list_cases()[1]["label"]).st_mtime + 5
    os.utime(liver_path, (later, later))
    datamodule(root, ["liver", "spleen"]).setup("fit")
    assert merged(first, "s0001")[7, 7, 7] == 1 and merged(first, "s0001")[1, 1, 1] == 0


@pytest.mark.unit
def test_a_merged_label_that_does_not_load_is_rebuilt_with_a_warning(tmp_path, caplog):
    root = hand_dataset(tmp_path, 2)
    datamodule(root, ["liver", "spleen"]).setup("fit")
    label = Path(datamodule(root, ["liver", "spleen"]).list_cases()[0]["label"])
    good = label.read_bytes()
    label.write_bytes(good[: len(good) // 2])  # newer than its masks, so only reading it shows the damage
    datamodule(root, ["liver", "spleen"]).setup("fit")
    assert re.search(f"rebuilding 1 merged label map.*{label.name}", caplog.text)  # (the seg logger's warning)
    assert merged(datamodule(root, ["liver", "spleen"]), "s0000")[1, 1, 1] == 1 and label.read_bytes() == good


@pytest.mark.unit
def test_groups_resolve_per_version_and_v1_is_detected(tmp_path):
    write_hand_case(tmp_path, "s0000", MARKS, names=CLASSES_V1)
    dm = datamodule(tmp_path, "cardiac")
    assert dm.version == "v1"
    assert dm.class_names[:2] == ["heart_myocardium", "heart_atrium_left"] and "heart" not in dm.class_names
    assert len(datamodule(tmp_path, "all").class_names) == 104
    assert len(datamodule(tmp_path, "vertebrae").class_names) == 24  # v1 has no vertebrae_S1


@pytest.mark.unit
def test_a_meta_csv_row_without_its_case_is_refused_by_name(tmp_path):
    root = hand_dataset(tmp_path, 2, meta={"s0000": "train", "s0001": "val", "s0002": "test"})
    (root / "s0002").write_text("a case folder that is a file")
    with pytest.raises(SegError, match=r"meta.csv lists 1 case\(s\) that are not case folders .*s0002"):
        datamodule(root, ["liver"])


@pytest.mark.unit
def test_meta_csv_split_is_honoured(tmp_path):
    meta = {"s0000": "val", "s0001": "train", "s0002": "test", "s0003": "val", "s0004": "train"}
    dm = datamodule(hand_dataset(tmp_path, 5, meta), ["liver"], val_fraction=0.2)
    dm.setup("fit")
    assert [c["case"] for c in dm.train_cases] == ["s0001", "s0004"]
    assert [c["case"] for c in dm.val_cases] == ["s0000", "s0003"]  # and the test case is in neither


@pytest.mark.unit
def test_a_fold_splits_the_non_test_cases_of_meta_csv(tmp_path):
    meta = {"s0000": "val", "s0001": "train", "s0002": "test", "s0003": "val", "s0004": "train"}
    dm = datamodule(hand_dataset(tmp_path, 5, meta), ["liver"], fold=1, num_folds=2)
    dm.setup("fit")
    expected = split_cases(["s0000", "s0001", "s0003", "s0004"], 0.2, 0, 1, 2)
    assert ([c["case"] for c in dm.train_cases], [c["case"] for c in dm.val_cases]) == expected


@pytest.mark.unit
def test_without_meta_csv_val_cases_the_base_split_is_used(tmp_path):
    ids = [f"s{i:04d}" for i in range(5)]
    expected = split_cases(ids, 0.4, 3)
    root = hand_dataset(tmp_path, 5)
    dm = datamodule(root, ["liver"], val_fraction=0.4, seed=3)
    dm.setup("fit")
    assert ([c["case"] for c in dm.train_cases], [c["case"] for c in dm.val_cases]) == expected
    (root / "meta.csv").write_text("image_id;split\n" + "".join(f"{i};train\n" for i in ids))  # no val rows
    dm.setup("fit")
    assert ([c["case"] for c in dm.train_cases], [c["case"] for c in dm.val_cases]) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("classes", "suggestion"),
    [(["liver", "livr"], "liver"), (["kidney_lft"], "kidney_left"), ("organ", "organs"),
     (["vertebrae_l1"], "vertebrae_L1")],
)
def test_an_unknown_class_lists_close_matches(tmp_path, classes, suggestion):
    write_hand_case(tmp_path, "s0000", MARKS)
    with pytest.raises(SegError) as error:
        datamodule(tmp_path, classes)
    wrong = classes if isinstance(classes, str) else classes[-1]
    assert repr(wrong) in str(error.value) and "did you mean" in str(error.value) and suggestion in str(error.value)


@pytest.mark.unit
def test_a_v1_only_class_on_v2_data_says_so(tmp_path):
    write_hand_case(tmp_path, "s0000", MARKS)
    with pytest.raises(SegError, match="'face' is not a TotalSegmentator v2 class .it is a v1 class"):
        datamodule(tmp_path, ["face"])


@pytest.mark.unit
def test_missing_root_names_the_path_and_suggests_synth(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(SegError) as error:
        datamodule(missing, "organs")
    assert str(missing) in str(error.value) and f"seg synth totalseg --out {missing}" in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegError, match="has no TotalSegmentator cases"):
        datamodule(tmp_path / "empty", "organs")
    assert not missing.exists()


@pytest.mark.unit
def test_ct_window_scales_hounsfield_units_to_unit_range(tmp_path):
    write_hand_case(tmp_path, "s0000", MARKS)
    transform = datamodule(tmp_path, ["liver"]).intensity_transform()
    image = torch.tensor([[-2000.0, -1000.0, 0.0, 1000.0, 3000.0]])
    assert transform({"image": image})["image"].tolist() == [[0.0, 0.0, 0.5, 1.0, 1.0]]


@pytest.mark.unit
def test_seg_synth_writes_every_v2_mask_and_meta_csv(synth_root):
    cases = sorted(p for p in synth_root.iterdir() if p.name.startswith("s"))
    assert [p.name for p in cases] == ["s0000", "s0001", "s0002", "s0003"]
    for case in cases:
        assert sorted(p.name for p in (case / "segmentations").iterdir()) == sorted(f"{n}.nii.gz" for n in CLASSES_V2)
    rows = [line.split(";") for line in (synth_root / "meta.csv").read_text().splitlines()]
    assert rows[0] == ["image_id", "split"] and {split for _, split in rows[1:]} == {"train", "val"}
    ct = nib.load(cases[0] / "ct.nii.gz")
    assert nib.aff2axcodes(ct.affine) == ("L", "P", "S") and ct.header.get_zooms() == (1.5, 1.5, 3.0)
    hu = np.asanyarray(ct.dataobj)
    liver = nib.load(cases[0] / "segmentations" / "liver.nii.gz")
    heart = np.asanyarray(nib.load(cases[0] / "segmentations" / "heart.nii.gz").dataobj)
    vertebra = np.asanyarray(nib.load(cases[0] / "segmentations" / "vertebrae_L1.nii.gz").dataobj) > 0
    assert liver.get_data_dtype() == np.uint8 and np.asanyarray(liver.dataobj).sum() > 100 and not heart.any()
    liver_hu, bone_hu = np.median(hu[np.asanyarray(liver.dataobj) > 0]), np.median(hu[vertebra])
    assert hu.min() < -900 and abs(liver_hu - 60) < 30 and bone_hu > 400  # air, soft tissue, bone


def test_fit_on_synthetic_totalseg_logs_dice_per_class(synth_root, tmp_path, seg):
    result = seg(
        "fit", "--config", str(TOTALSEG_CONFIG), "--config", str(TINY_CONFIG),
        "--data.root", str(synth_root), "--data.classes", "[liver, spleen]", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs/totalseg_unet_reduce_on_plateau/version_0"
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert (hparams["class_names"], hparams["out_channels"]) == (["liver", "spleen"], 3)
    for tag in ("val/dice/liver", "val/dice/spleen"):
        values = [value for _, value in scalars(run, tag)]
        assert len(values) == 2 and all(0.0 <= v <= 1.0 and not math.isnan(v) for v in values), (tag, values)
    merges = list((synth_root / ".seg_cache").glob("totalseg_*/s*.nii.gz"))
    assert len(merges) == 4
    assert all(set(np.unique(np.asanyarray(nib.load(p).dataobj))) == {0, 1, 2} for p in merges)


def test_meta_csv_test_cases_are_never_trained_on_and_are_what_seg_test_scores(tmp_path_factory, seg):
    root = tmp_path_factory.mktemp("totalseg10")
    assert seg("synth", "totalseg", "--out", str(root), "--cases", "10", "--shape", "24", "24", "24").returncode == 0
    official = dict(line.split(";") for line in (root / "meta.csv").read_text().split()[1:])
    test = sorted(case for case, split in official.items() if split == "test")
    assert test == ["s0009"]

    dm = datamodule(root, ["liver", "spleen"], patch_size=(16, 16, 16))
    dm.setup("fit")
    assert [c["case"] for c in dm.test_cases] == test
    loaded = [item["case"] for dataset in (dm.train_set.dataset, dm.val_set) for item in dataset.data]
    assert len(loaded) == 9 and not set(loaded) & set(test)  # what the training and validation loaders read
    assert dm.state_dict()["test"] == test and dm.state_dict()["test_source"] == "meta.csv test"

    work = tmp_path_factory.mktemp("totalseg10_run")
    fit = ["fit", "--config", str(TOTALSEG_CONFIG), "--config", str(TINY_CONFIG), "--data.root", str(root),
           "--data.classes", "[liver, spleen]", "--trainer.max_epochs=1"]
    assert seg(*fit, cwd=work).returncode == 0
    ckpt = next(work.glob("lightning_logs/*/version_0/checkpoints/last.ckpt"))
    result = seg("test", "--ckpt_path", str(ckpt), cwd=work)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (ckpt.parents[1] / "test" / "last.csv").read_text().splitlines()
    assert rows[0].startswith("split,case,dice/liver,hd95/liver,dice/spleen,hd95/spleen")
    assert [row.split(",")[:2] for row in rows[1:]] == [["test", "s0009"], ["test", "mean"]]
