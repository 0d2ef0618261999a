"""The dataset fingerprint: computed in the up-front check's single pass, equal to an independent numpy
computation, cached per case (a second check reads nothing), a changed file read again."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from segmentation.data import checks
from segmentation.data.check_cache import CACHE_NAME
from segmentation.data.checks import check_dataset
from segmentation.data.fingerprint import FOREGROUND_SAMPLES, dataset_fingerprint

pytestmark = pytest.mark.unit

LABELS = {0, 1, 2}
# file axis 0 -> world y (flipped), 1 -> z, 2 -> x (flipped): an oblique-free but permuted, LPS-like, anisotropic grid
PERMUTED = np.array([[0.0, 0.0, -0.8, 10.0], [-0.7, 0.0, 0.0, 5.0], [0.0, 3.0, 0.0, -20.0], [0.0, 0.0, 0.0, 1.0]])
LPS = np.diag([-1.5, -1.5, 2.0, 1.0])


def save(data: np.ndarray, affine: np.ndarray, path) -> str:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def volume(shape, seed: int, box, label_boxes) -> tuple[np.ndarray, np.ndarray]:
    """An image nonzero inside `box` only (random intensities) and a label with value v inside each of its boxes."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    image[box] = rng.normal(100.0 + seed, 20.0, image[box].shape).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    for value, where in label_boxes.items():
        label[where] = value
    return image, label


def write_cases(root) -> list[dict]:
    """Three single-channel cases: RAS isotropic, LPS anisotropic, permuted axes; one with > 10,000 foreground."""
    root.mkdir(parents=True, exist_ok=True)
    specs = [
        ("ras", (10, 12, 8), np.eye(4), np.s_[2:9, 1:10, 3:7], {1: np.s_[3:6, 2:5, 3:5], 2: np.s_[6:8, 6:9, 4:6]}),
        ("lps", (9, 7, 11), LPS, np.s_[1:5, 2:7, 0:9], {2: np.s_[2:4, 3:6, 1:8]}),
        ("big", (24, 40, 30), PERMUTED, np.s_[1:23, 3:37, 2:29],
         {1: np.s_[2:20, 4:30, 3:28], 2: np.s_[20:22, 30:36, 3:5]}),
    ]
    cases = []
    for seed, (name, shape, affine, box, label_boxes) in enumerate(specs):
        image, label = volume(shape, seed, box, label_boxes)
        cases.append({"case": name, "image": save(image, affine, root / f"{name}_img.nii.gz"),
                      "label": save(label, affine, root / f"{name}_lbl.nii.gz")})
    return cases


def expected_case(case: dict) -> dict:
    """The fingerprint of one case by plain numpy on nibabel's canonical (RAS) images."""
    image = nib.as_closest_canonical(nib.load(case["image"]))
    label = np.asarray(nib.as_closest_canonical(nib.load(case["label"])).dataobj)
    data = np.asarray(image.dataobj, dtype=np.float32)
    where = np.argwhere(data != 0)
    low, high = where.min(axis=0), where.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(low, high))
    values = data[box][label[box] > 0]
    return {"spacing": tuple(float(z) for z in image.header.get_zooms()[:3]), "shape": data.shape,
            "cropped_shape": tuple(int(n) for n in high - low), "values": values,
            "class_voxels": {int(v): int(n) for v, n in zip(*np.unique(label, return_counts=True))}}


def test_the_fingerprint_equals_an_independent_numpy_computation(tmp_path):
    cases = write_cases(tmp_path / "data")
    report = check_dataset(cases, LABELS, tmp_path / "cache", channels=1, workers=2)
    assert not report.problems and [f.case for f in report.fingerprints] == ["ras", "lps", "big"]
    expected = [expected_case(case) for case in cases]
    fingerprint = dataset_fingerprint(report, ["CT"], ["CT"])
    assert fingerprint.spacings() == pytest.approx(np.array([e["spacing"] for e in expected]), rel=1e-5)
    assert fingerprint.spacings()[1:].tolist() == [[1.5, 1.5, 2.0], [0.8, 0.7, 3.0]]  # (the check's 4 decimals)
    assert fingerprint.shapes().tolist() == [list(e["shape"]) for e in expected]
    assert fingerprint.shapes()[2].tolist() == [30, 24, 40]
    assert fingerprint.cropped_shapes().tolist() == [list(e["cropped_shape"]) for e in expected]
    relative = [np.prod(e["cropped_shape"]) / np.prod(e["shape"]) for e in expected]
    assert fingerprint.median_relative_size_after_cropping == pytest.approx(np.median(relative))
    for case, want in zip(fingerprint.cases, expected):
        assert case.class_voxels == want["class_voxels"]
        stats, values = case.foreground[0], want["values"].astype(np.float64)
        assert stats["count"] == values.size
        assert stats["mean"] == pytest.approx(values.mean()) and stats["std"] == pytest.approx(values.std())
        assert (stats["min"], stats["max"]) == (values.min(), values.max())

    small = [e["values"] for e in expected[:2]]
    assert all(v.size <= FOREGROUND_SAMPLES for v in small) and expected[2]["values"].size > FOREGROUND_SAMPLES
    samples = [case.foreground_samples() for case in fingerprint.cases]
    assert [s.shape for s in samples] == [(1, small[0].size), (1, small[1].size), (1, FOREGROUND_SAMPLES)]
    assert np.array_equal(samples[0][0], small[0]) and np.array_equal(samples[1][0], small[1])  # all, in C order
    assert samples[2][0][0] == expected[2]["values"][0] and samples[2][0][-1] == expected[2]["values"][-1]

    pooled = np.concatenate([s[0] for s in samples])
    intensity = fingerprint.intensity[0]
    assert intensity["count"] == pooled.size
    assert intensity["percentile_00_5"] == pytest.approx(np.percentile(pooled, 0.5))
    assert intensity["percentile_99_5"] == pytest.approx(np.percentile(pooled, 99.5))
    assert intensity["median"] == pytest.approx(np.median(pooled))
    assert intensity["mean"] == pytest.approx(np.mean(pooled)) and intensity["std"] == pytest.approx(np.std(pooled))
    assert (intensity["min"], intensity["max"]) == (pooled.min(), pooled.max())

    # the strided subsample of the big case against its exact statistics: within 2 % of the std (percentiles 5 %)
    exact, sample = expected[2]["values"].astype(np.float64), samples[2][0].astype(np.float64)
    scale = exact.std()
    assert abs(sample.mean() - exact.mean()) < 0.02 * scale and abs(sample.std() - exact.std()) < 0.02 * scale
    for q in (0.5, 50, 99.5):
        assert abs(np.percentile(sample, q) - np.percentile(exact, q)) < 0.05 * scale
    assert fingerprint.as_json()["shapes_after_crop"] == fingerprint.cropped_shapes().tolist()


def test_a_second_check_reads_no_file_and_gives_an_equal_fingerprint(tmp_path, monkeypatch):
    cases = write_cases(tmp_path / "data")
    first = check_dataset(cases, LABELS, tmp_path / "cache", channels=1, workers=2)
    assert (tmp_path / "cache" / CACHE_NAME).is_file()
    assert len(list((tmp_path / "cache/fingerprint").glob("*.npy"))) == 3

    def refuse(path, is_label):
        raise AssertionError(f"{path} was read again")
    monkeypatch.setattr(checks, "read_file", refuse)
    second = check_dataset(cases, LABELS, tmp_path / "cache", channels=1, workers=2)
    assert second.fingerprints == first.fingerprints and not second.problems
    for a, b in zip(first.fingerprints, second.fingerprints):
        assert np.array_equal(a.foreground_samples(), b.foreground_samples())
    assert dataset_fingerprint(second, ["CT"], ["CT"]).as_json() == dataset_fingerprint(first, ["CT"], ["CT"]).as_json()


def test_a_changed_file_is_read_again(tmp_path, monkeypatch):
    cases = write_cases(tmp_path / "data")
    check_dataset(cases, LABELS, tmp_path / "cache", channels=1, workers=2)
    path = cases[1]["image"]
    image = nib.load(path)
    save(np.asarray(image.dataobj) * 2, image.affine, path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # (a coarse file system clock)
    read, real = [], checks.read_file
    monkeypatch.setattr(checks, "read_file", lambda p, is_label: (read.append(str(p)), real(p, is_label))[1])
    report = check_dataset(cases, LABELS, tmp_path / "cache", channels=1, workers=2)
    assert sorted(read) == sorted([cases[1]["image"], cases[1]["label"]])  # its label too: the arrays are needed
    want = expected_case(cases[1])["values"].astype(np.float64)
    assert report.fingerprints[1].foreground[0]["mean"] == pytest.approx(want.mean())


def test_channels_in_one_4d_file_or_one_file_each_give_one_fingerprint(tmp_path):
    shape, box = (8, 9, 10), np.s_[1:7, 2:8, 1:9]
    t1, label = volume(shape, 1, box, {1: np.s_[2:5, 3:6, 2:8]})
    t2 = np.where(t1 != 0, t1 * 3 + 1, 0).astype(np.float32)
    t2[0, 0, 0] = 5.0  # nonzero in the second channel only: widens the crop
    one = {"case": "c", "image": save(np.stack([t1, t2], -1), LPS, tmp_path / "c.nii.gz"),
           "label": save(label, LPS, tmp_path / "c_seg.nii.gz")}
    split = {"case": "c", "image": [save(t1, LPS, tmp_path / "c_t1.nii.gz"), save(t2, LPS, tmp_path / "c_t2.nii.gz")],
             "label": one["label"]}
    a = check_dataset([one], {0, 1}, tmp_path / "cache_a", channels=2).fingerprints[0]
    b = check_dataset([split], {0, 1}, tmp_path / "cache_b", channels=2).fingerprints[0]
    assert a == b and np.array_equal(a.foreground_samples(), b.foreground_samples())
    assert a.cropped_shape == (7, 8, 9) and len(a.foreground) == 2
    assert a.foreground[1]["mean"] == pytest.approx(a.foreground[0]["mean"] * 3 + 1, rel=1e-5)
    json = dataset_fingerprint(check_dataset([split], {0, 1}, None, channels=2), ["t1", "t2"], ["MR", "MR"]).as_json()
    assert list(json["foreground_intensity_properties_per_channel"]) == ["t1", "t2"]


def test_cases_with_problems_get_no_fingerprint_and_masks_are_still_checked(tmp_path):
    cases = write_cases(tmp_path / "data")
    image = nib.load(cases[0]["label"])
    broken = np.asarray(image.dataobj).copy()
    broken[0, 0, 0] = 7
    save(broken, image.affine, cases[0]["label"])
    mask = np.zeros((9, 7, 11), np.uint8)
    mask[1, 1, 1] = 3  # a mask holds 0 and 1 only
    cases[1]["masks"] = {"liver": save(mask, LPS, tmp_path / "data/liver.nii.gz")}
    report = check_dataset(cases, LABELS, None, channels=1)  # no cache folder: the samples stay in memory
    assert [f.case for f in report.fingerprints] == ["big"]
    assert report.fingerprints[0].samples is not None and report.fingerprints[0].samples_file == ""
    assert {p.case for p in report.problems} == {"ras", "lps"}
    assert any("mask liver holds values [3.0]" in str(p) for p in report.problems)
