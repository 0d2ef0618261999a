"""Bad data: each case breaks one thing in a copy of a synthetic dataset in its real layout."""

from __future__ import annotations

import numpy as np

from .breakers import (
    change_affine,
    cut_short,
    dangling_link,
    every_row,
    flipped_first_axis,
    header_larger_than_data,
    into_file,
    into_folder,
    link_loop,
    nan_in_the_middle,
    on_first,
    remove,
    replace_bytes,
    rewrite,
    rewrite_image,
    rewrite_json,
    rewrite_label,
    rewrite_meta_csv,
    shifted,
    with_row,
)
from .setting import Case, empty_folder


def msd(breaker, *overrides: str):
    """The arguments of a tiny fit on a copy of the MSD demo data broken by `breaker`."""
    return lambda s: s.fit(s.broken_data(breaker), *overrides)


def brats(breaker):
    return lambda s: s.fit(s.broken_data(breaker, "brats"), kind="brats")


def totalseg(breaker, *overrides: str):
    return lambda s: s.fit(s.broken_data(breaker, "totalseg"), *overrides, kind="totalseg")


def singular(affine: np.ndarray) -> np.ndarray:
    affine[:3, 2] = 0.0
    return affine


def nan_affine(affine: np.ndarray) -> np.ndarray:
    affine[0, 0] = np.nan
    return affine


def huge_voxels(affine: np.ndarray) -> np.ndarray:
    affine[:3, :3] *= 1e6
    return affine


def channel_with_nan(data: np.ndarray) -> np.ndarray:
    return nan_in_the_middle(data)


def listed_twice(meta: dict) -> None:
    meta["training"].append(dict(meta["training"][0]))


CASE_0 = "demo_000"
BRATS_CASE = "BraTS2021_00000/BraTS2021_00000"

DATA: dict[str, Case] = {
    # MSD: images
    "2D image in a 3D task": Case(msd(rewrite_image(CASE_0, lambda d: d[:, :, 16])),
                                  "demo_000.nii.gz: image has 2 dimensions [32, 32]"),
    "4D image with another channel count": Case(
        msd(rewrite_image("demo_001", lambda d: np.stack([d, d], -1))),
        "demo_001.nii.gz: image holds 2 channel(s) [32, 32, 32, 2], but the dataset declares 1"),
    "symbolic link loop": Case(msd(link_loop("imagesTr/demo_002.nii.gz")),
                               "demo_002.nii.gz: image is a symbolic link loop"),
    "a dangling symbolic link": Case(msd(dangling_link("imagesTr/demo_002.nii.gz")), "demo_002.nii.gz: image"),
    "NaN voxels in an image": Case(msd(rewrite_image("demo_003", nan_in_the_middle)),
                                   "demo_003.nii.gz: image holds NaN or Inf voxels"),
    "an infinite voxel": Case(msd(rewrite_image("demo_003", lambda d: np.where(d == d.max(), np.inf, d))),
                              "demo_003.nii.gz: image holds NaN or Inf voxels"),
    "a complex-valued image": Case(msd(rewrite_image("demo_004", lambda d: d.astype(np.complex64))),
                                   "demo_004.nii.gz: image holds complex voxels"),
    "a truncated image file": Case(msd(cut_short("imagesTr/demo_005.nii.gz")),
                                   "demo_005.nii.gz: image unreadable, truncated or not NIfTI"),
    "an empty image file": Case(msd(replace_bytes("imagesTr/demo_005.nii.gz", b"")), "demo_005.nii.gz: image"),
    "an image file that is not NIfTI": Case(msd(replace_bytes("imagesTr/demo_005.nii.gz", b"\x89PNG\r\n" * 64)),
                                            "demo_005.nii.gz: image unreadable, truncated or not NIfTI"),
    "an image file that is a folder": Case(msd(into_folder("imagesTr/demo_001.nii.gz")),
                                           "demo_001.nii.gz: image"),
    "a header that promises more voxels than the file holds": Case(
        msd(header_larger_than_data("imagesTr/demo_002.nii.gz")), "demo_002.nii.gz: image unreadable"),
    "an affine that is singular": Case(msd(change_affine("imagesTr/demo_003.nii.gz", singular)),
                                       "demo_003.nii.gz: image affine"),
    "an affine holding NaN": Case(msd(change_affine("imagesTr/demo_003.nii.gz", nan_affine)),
                                  "demo_003.nii.gz: image affine"),
    "voxels of a kilometre resampled to --data.spacing": Case(
        msd(lambda d: (change_affine("imagesTr/demo_004.nii.gz", huge_voxels)(d),
                       change_affine("labelsTr/demo_004.nii.gz", huge_voxels)(d)), "--data.spacing=[1,1,1]"),
        "demo_004.nii.gz"),
    "volumes one slice thick": Case(msd(lambda d: (rewrite("imagesTr/*.nii.gz", lambda v: v[:, :, 16:17].copy())(d),
                                                    rewrite("labelsTr/*.nii.gz", lambda v: v[:, :, 16:17].copy())(d))),
                                    "thinner than the smallest patch the network takes"),
    # MSD: labels
    "a label with a value the dataset does not declare": Case(
        msd(rewrite_label("demo_004", lambda d: np.where(d > 0, 7, d))),
        "label holds values [7.0] outside the declared set [0, 1, 2]"),
    "a label of fractional values": Case(msd(rewrite_label("demo_004", lambda d: d.astype(np.float32) * 0.5)),
                                         "demo_004.nii.gz: label holds values [0.5"),
    "a label holding NaN": Case(msd(rewrite_label("demo_004", nan_in_the_middle)), "demo_004.nii.gz: label"),
    "a label of another shape than its image": Case(msd(rewrite_label("demo_001", lambda d: d[:, :, :30].copy())),
                                                    "demo_001.nii.gz: label shape [32, 32, 30] differs"),
    "a label with a 4th axis": Case(msd(rewrite_label("demo_002", lambda d: np.stack([d, d], axis=-1))),
                                    "label has shape [32, 32, 32, 2]: expected a 3D volume"),
    "a label on another voxel grid than its image": Case(
        msd(change_affine("labelsTr/demo_003.nii.gz", shifted)),
        "demo_003.nii.gz: label affine differs from the image's (not the same voxel grid)"),
    "a label stored in another orientation": Case(
        msd(change_affine("labelsTr/demo_003.nii.gz", flipped_first_axis, lambda d: d[::-1].copy())),
        "demo_003.nii.gz: label affine differs from the image's"),
    "a missing label file": Case(msd(remove("labelsTr/demo_000.nii.gz")), "demo_000.nii.gz: label missing"),
    "labels that are all background": Case(msd(rewrite("labelsTr/*.nii.gz", np.zeros_like)),
                                           "holds background only (value 0): the network would learn nothing"),
    # MSD: the dataset as a whole
    "a data root that does not exist": Case(lambda s: s.fit(s.tmp / "nowhere"), "nowhere does not exist (--data.root)"),
    "a data root without dataset.json": Case(msd(remove("dataset.json")), "dataset.json"),
    "dataset.json that is not JSON": Case(msd(replace_bytes("dataset.json", b"{training: [")),
                                          "dataset.json is not valid JSON"),
    "dataset.json whose training entry is not a list": Case(
        msd(rewrite_json(lambda meta: meta.update(training="all"))),
        "dataset.json: 'training' is a str, an MSD dataset.json has a list of {image, label} entries there"),
    "dataset.json entry without a label": Case(msd(rewrite_json(lambda meta: meta["training"][0].pop("label"))),
                                               "every 'training' entry needs an 'image' and a 'label' path"),
    "dataset.json without training cases": Case(msd(rewrite_json(lambda meta: meta.update(training=[]))),
                                                "no labelled cases found in"),
    "dataset.json without its labels": Case(msd(rewrite_json(lambda meta: meta.pop("labels"))),
                                            "dataset.json has no 'labels' entry"),
    "dataset.json listing one case twice": Case(msd(rewrite_json(listed_twice)), "demo_000 is listed twice"),
    "an empty imagesTr": Case(msd(lambda d: (remove("imagesTr")(d), (d / "imagesTr").mkdir())), "image missing"),
    # BraTS: case folders of four modalities and a label
    "a BraTS case folder that is a file": Case(brats(into_file("BraTS2021_00001")), "BraTS2021_00001"),
    "a BraTS case without its FLAIR": Case(brats(remove(f"{BRATS_CASE}_flair.nii.gz")), "flair"),
    "a BraTS modality of another shape": Case(
        brats(rewrite(f"{BRATS_CASE}_t2.nii.gz", lambda d: d[:, :, :30].copy())),
        "BraTS2021_00000_t2.nii.gz: image shape [32, 32, 30] differs"),
    "NaN in one BraTS modality": Case(brats(rewrite(f"{BRATS_CASE}_t1ce.nii.gz", channel_with_nan)),
                                      "BraTS2021_00000_t1ce.nii.gz: image holds NaN or Inf voxels"),
    "a BraTS label with the value 3 (2021 uses 1, 2, 4)": Case(
        brats(rewrite(f"{BRATS_CASE}_seg.nii.gz", lambda d: np.where(d == 4, 3, d))), "outside the declared set"),
    "a BraTS root without cases": Case(lambda s: s.fit(empty_folder(s.tmp / "brats"), kind="brats"),
                                       "is empty; point --data.root"),
    # TotalSegmentator: a CT, a folder of masks per case, and meta.csv
    "a TotalSegmentator case folder that is a file": Case(totalseg(into_file("s0001")), "s0001"),
    "a meta.csv row naming a missing case": Case(totalseg(rewrite_meta_csv(with_row({"image_id": "s0099"}))),
                                                 "s0099"),
    "a meta.csv without its split column": Case(
        totalseg(rewrite_meta_csv(lambda rows: [{"image_id": row["image_id"]} for row in rows])), "meta.csv"),
    "a meta.csv that puts every case in test": Case(totalseg(rewrite_meta_csv(every_row("split", "test"))),
                                                    "leaves no case to train on"),
    "a TotalSegmentator case without the liver mask": Case(
        totalseg(remove("s0000/segmentations/liver.nii.gz")), "liver.nii.gz"),
    "a TotalSegmentator mask of another shape than the CT": Case(
        totalseg(rewrite("s0000/segmentations/spleen.nii.gz", lambda d: d[:, :, :30].copy())), "spleen.nii.gz"),
    "a TotalSegmentator CT cut short": Case(totalseg(on_first("s0000/ct.nii.gz", cut_short)), "ct.nii.gz"),
    "an unknown class in --data.classes": Case(lambda s: s.fit(s.roots("totalseg"), "--data.classes=[livr]",
                                                               kind="totalseg"), "livr"),
}
