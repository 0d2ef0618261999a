"""Benchmark: load + preprocess time and cache size of one BraTS-size case (4 x 240 x 240 x 155).

Writes an MSD Task01_BrainTumour-style task (4D float32 images, 4 MRI channels,
LPS 1 mm) of N cases, then measures with seg's own code:
- the up-front check (`check_dataset`): seconds per case, first run and cached re-run;
- load + preprocess (RAS, z-score on brain voxels) per case, and the bytes one
  preprocessed case holds (what `cache: memory` keeps in RAM per case);
- `cache: disk` (MONAI PersistentDataset): seconds per case to build, bytes on disk per case,
  and seconds per case to read back;
- a plain MONAI loop (LoadImaged, Orientationd, NormalizeIntensityd) on the same files, as the baseline.

Run: python benchmarks/preprocess_case.py [N_CASES] [DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from monai import transforms as mt

from segmentation.data.caching import measure_preprocessing
from segmentation.data.checks import check_dataset
from segmentation.data.msd import MSDDataModule
from segmentation.data.synthetic.common import ellipsoid_mask, lps_affine

SHAPE = (240, 240, 155)


def write_task(root: Path, cases: int) -> Path:
    """N BraTS-size cases in the MSD Task01 layout."""
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    affine = lps_affine((1.0, 1.0, 1.0), SHAPE)
    head = ellipsoid_mask(SHAPE, np.array(SHAPE) / 2, np.array(SHAPE) * 0.42)
    training = []
    for i in range(cases):
        label = np.zeros(SHAPE, np.uint8)
        label[ellipsoid_mask(SHAPE, (120, 110, 80), (30, 25, 20))] = 2
        label[ellipsoid_mask(SHAPE, (120, 110, 80), (15, 12, 10))] = 3
        image = np.stack([(rng.normal(300 + 100 * c, 40, SHAPE) + 150 * label) * head for c in range(4)], -1)
        name = f"BRATS_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), root / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / name)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "BrainTumour", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def per_case(seconds: float, cases: int) -> str:
    return f"{seconds / cases:.2f} s per case"


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    root = write_task(Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp()) / "Task01", cases)
    datamodule = MSDDataModule(str(root), patch_size=(128, 128, 128), cache="disk", num_workers=2)
    items = datamodule.list_cases()
    print(f"{cases} cases of 4 x {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]} float32 ({root})")

    for run in ("first", "cached"):
        started = time.perf_counter()
        report = check_dataset(items, datamodule.label_values(), datamodule.cache_folder(), workers=2)
        print(f"up-front check ({run} run): {per_case(time.perf_counter() - started, cases)}, "
              f"{len(report.problems)} problems")

    pipeline = mt.Compose(datamodule.preprocessing())
    plain = mt.Compose([
        mt.LoadImaged(keys=["image", "label"], ensure_channel_first=True, image_only=True),
        mt.Orientationd(keys=["image", "label"], axcodes="RAS"),
        mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ])
    plain(dict(items[0]))  # warm-up: both then read files from the page cache
    seg_times, plain_times, nbytes = [], [], 0
    for case in items:  # interleaved, so neither side gets the warmer cache
        seconds, nbytes = measure_preprocessing(case, pipeline)
        seg_times.append(seconds)
        started = time.perf_counter()
        plain(dict(case))
        plain_times.append(time.perf_counter() - started)
    seconds, baseline = float(np.mean(seg_times)), float(np.mean(plain_times))
    print(f"seg load + preprocess: {seconds:.2f} s per case; one preprocessed case in RAM: {nbytes / 2**20:.0f} MiB")
    print(f"plain MONAI load + preprocess: {baseline:.2f} s per case (ratio seg / plain: {seconds / baseline:.2f})")

    datamodule.setup("fit")
    dataset = datamodule.train_set
    started = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    build = time.perf_counter() - started
    folder = datamodule.cache_folder() / f"preprocessed_{datamodule.preprocessing_key()}"
    on_disk = sum(p.stat().st_size for p in folder.iterdir())
    started = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    read = time.perf_counter() - started
    n = len(dataset)
    print(f"disk cache: build {per_case(build, n)} (incl. random crops), {on_disk / n / 2**20:.0f} MiB per case "
          f"on disk, read back {per_case(read, n)}")


if __name__ == "__main__":
    main()
