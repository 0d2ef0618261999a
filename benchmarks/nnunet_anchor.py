"""Benchmark anchor: what nnU-Net v2 itself plans for seg's synthetic datasets (the reference for `seg plan`).

nnU-Net lives in its own venv and is run only as subprocesses (`--nnunet-bin`); seg never imports it. Per
dataset: write it with seg's synthetic writers, convert it to nnU-Net's raw format
(DatasetNNN_Name/imagesTr/<case>_000C.nii.gz, labelsTr/<case>.nii.gz, dataset.json), run
`nnUNetv2_extract_fingerprint` and `nnUNetv2_plan_experiment` (default ExperimentPlanner, nnUNetPlans), time
both, copy `dataset_fingerprint.json` and `nnUNetPlans.json` to tests/measure/fixtures/nnunet/<dataset>/
with a `source.json` (how the data was made), and print nnU-Net's plan in seg's RAS axis order
(tests/measure/nnunet_fixtures.py reads the fixtures; `--seg-plans DIR` prints seg's <dataset>.plan.json beside).
`--seg` also runs `seg plan` on the same data, twice, timed (benchmarks/nnunet_anchor_seg.py), prints its plan
beside nnU-Net's and a markdown summary of both; `--seg-only` does that from the committed fixtures without
running nnU-Net (data missing under --work is written again by the same makers).

Run: python benchmarks/nnunet_anchor.py [--datasets demo liver ...] [--work /tmp/nnunet_anchor]
     [--nnunet-bin /work/nnunet-venv/bin] [--print-only] [--seg-plans DIR] [--seg | --seg-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np

from segmentation.data.synthetic import write
from segmentation.data.synthetic.common import lps_affine, save_nifti
from segmentation.data.synthetic.msd import ct_case

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.measure.nnunet_fixtures import FIXTURES, load_fixture  # noqa: E402

MRI = ["T1", "T1ce", "T2", "FLAIR"]
TOTALSEG_CLASSES = ["liver", "spleen", "kidney_right", "kidney_left"]  # merged label map: 1, 2, 3, 4


@dataclass(frozen=True)
class AnchorSet:
    """One anchor dataset: its nnU-Net id and a function that writes its raw folder and returns its source note."""

    name: str
    dataset_id: int
    make: Callable[[Path, Path], dict]  # (seg source folder, nnU-Net raw dataset folder) -> source.json fields

    @property
    def folder(self) -> str:
        return f"Dataset{self.dataset_id}_{self.name.capitalize()}"


def dataset_json(raw: Path, channels: list[str], labels: list[str], cases: int) -> None:
    meta = {"channel_names": {str(i): c for i, c in enumerate(channels)},
            "labels": {name: value for value, name in enumerate(labels)},
            "numTraining": cases, "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(meta, indent=2))


def raw_folders(raw: Path) -> tuple[Path, Path]:
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    return raw / "imagesTr", raw / "labelsTr"


def synth_command(kind: str, out: Path, cases: int, shape: tuple[int, int, int], seed: int) -> str:
    return f"seg synth {kind} --out {out} --cases {cases} --shape {' '.join(map(str, shape))} --seed {seed}"


def msd_maker(kind: str, cases: int, shape: tuple[int, int, int], seed: int = 0) -> Callable[[Path, Path], dict]:
    """An MSD-layout task (`seg synth demo|msd`): images copied as <case>_0000, labels as they are."""

    def make(source: Path, raw: Path) -> dict:
        write(kind, source, cases=cases, shape=shape, seed=seed)
        images, labels = raw_folders(raw)
        meta = json.loads((source / "dataset.json").read_text())
        for entry in meta["training"]:
            case = Path(entry["image"]).name.removesuffix(".nii.gz")
            shutil.copyfile(source / entry["image"], images / f"{case}_0000.nii.gz")
            shutil.copyfile(source / entry["label"], labels / f"{case}.nii.gz")
        names = [meta["labels"][str(v)] for v in range(len(meta["labels"]))]
        dataset_json(raw, ["CT"], names, cases)
        return {"seg_synth": synth_command(kind, source, cases, shape, seed),
                "conversion": "imagesTr/<case>.nii.gz -> imagesTr/<case>_0000.nii.gz (copied); labels copied"}

    return make


def make_brats(source: Path, raw: Path, cases: int = 6, shape: tuple[int, int, int] = (64, 64, 64)) -> dict:
    write("brats", source, cases=cases, shape=shape, seed=0)
    images, labels = raw_folders(raw)
    suffixes = ("t1", "t1ce", "t2", "flair")
    for case_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        for channel, suffix in enumerate(suffixes):
            target = images / f"{case_dir.name}_{channel:04d}.nii.gz"
            shutil.copyfile(case_dir / f"{case_dir.name}_{suffix}.nii.gz", target)
        seg = nib.load(case_dir / f"{case_dir.name}_seg.nii.gz")
        label = np.asarray(seg.dataobj).astype(np.uint8)
        label[label == 4] = 3
        nib.save(nib.Nifti1Image(label, seg.affine), labels / f"{case_dir.name}.nii.gz")
    dataset_json(raw, MRI, ["background", "necrotic", "edema", "enhancing"], cases)
    return {"seg_synth": synth_command("brats", source, cases, shape, 0),
            "conversion": "t1, t1ce, t2, flair -> _0000.._0003 (copied); label 4 (enhancing) remapped to 3 "
                          "(nnU-Net needs consecutive labels)"}


def make_totalseg(source: Path, raw: Path, cases: int = 6, shape: tuple[int, int, int] = (64, 64, 64)) -> dict:
    write("totalseg", source, cases=cases, shape=shape, seed=0)
    images, labels = raw_folders(raw)
    for case_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        shutil.copyfile(case_dir / "ct.nii.gz", images / f"{case_dir.name}_0000.nii.gz")
        merged = None
        for value, name in enumerate(TOTALSEG_CLASSES, start=1):
            mask = nib.load(case_dir / "segmentations" / f"{name}.nii.gz")
            if merged is None:
                merged, affine = np.zeros(mask.shape, np.uint8), mask.affine
            merged[np.asarray(mask.dataobj) > 0] = value
        nib.save(nib.Nifti1Image(merged, affine), labels / f"{case_dir.name}.nii.gz")
    dataset_json(raw, ["CT"], ["background", *TOTALSEG_CLASSES], cases)
    return {"seg_synth": synth_command("totalseg", source, cases, shape, 0),
            "conversion": f"ct.nii.gz -> _0000 (copied); masks {', '.join(TOTALSEG_CLASSES)} merged into labels "
                          "1..4 with nibabel (a later class wins on overlap)"}


def ct_maker(shape: tuple[int, int, int], spacings: list[tuple[float, float, float]], seed: int = 0):
    """A CT set written directly (seg's `ct_case` volumes, LPS affines), one spacing per case."""

    def make(source: Path, raw: Path) -> dict:
        images, labels = raw_folders(raw)
        rng = np.random.default_rng(seed)
        for index, spacing in enumerate(spacings):
            image, label = ct_case(rng, shape)
            affine = lps_affine(spacing, shape)
            save_nifti(image, affine, images / f"ct_{index:03d}_0000.nii.gz")
            save_nifti(label, affine, labels / f"ct_{index:03d}.nii.gz")
        dataset_json(raw, ["CT"], ["background", "organ", "lesion"], len(spacings))
        return {"writer": "segmentation.data.synthetic.msd.ct_case (demo tissue HU) + common.lps_affine, "
                          f"np.random.default_rng({seed}), shape {list(shape)}",
                "case_spacings": [list(s) for s in spacings], "conversion": "written directly in nnU-Net's layout"}

    return make


ANISO_Z = [3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0]
DATASETS = [
    AnchorSet("demo", 501, msd_maker("demo", 12, (48, 48, 48))),
    AnchorSet("liver", 502, msd_maker("msd", 6, (160, 160, 64))),
    AnchorSet("brats", 503, make_brats),
    AnchorSet("totalseg", 504, make_totalseg),
    AnchorSet("anisotropic", 505, ct_maker((128, 128, 20), [(0.7, 0.7, z) for z in ANISO_Z])),
    AnchorSet("large", 506, ct_maker((320, 320, 240), [(1.0, 1.0, 1.0)] * 4)),
]


def array_to_ras(image: Path) -> list[int]:
    """The RAS axis each voxel-array axis of `image` runs along (from its affine)."""
    return [int(axis) for axis in nib.orientations.io_orientation(nib.load(image).affine)[:, 0]]


def nnunet_version(bin_dir: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('nnunetv2'))"
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_timed(command: list[str], env: dict) -> float:
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def build(anchor: AnchorSet, work: Path, bin_dir: Path, fixtures: Path, processes: int) -> None:
    env = {**os.environ, **{key: str(work / key) for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}}
    source, raw = work / "source" / anchor.name, work / "nnUNet_raw" / anchor.folder
    for folder in (source, raw, work / "nnUNet_preprocessed" / anchor.folder):
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    note = anchor.make(source, raw)
    write_seconds = round(time.perf_counter() - start, 2)
    dataset_id = str(anchor.dataset_id)
    commands = [[str(bin_dir / "nnUNetv2_extract_fingerprint"), "-d", dataset_id, "-np", str(processes), "--clean",
                 "--no_pbar"],
                [str(bin_dir / "nnUNetv2_plan_experiment"), "-d", dataset_id]]
    fingerprint_s, plan_s = (run_timed(command, env) for command in commands)
    out = fixtures / anchor.name
    out.mkdir(parents=True, exist_ok=True)
    preprocessed = work / "nnUNet_preprocessed" / anchor.folder
    for name in ("dataset_fingerprint.json", "nnUNetPlans.json"):
        shutil.copyfile(preprocessed / name, out / name)
    meta = json.loads((raw / "dataset.json").read_text())
    first_image = sorted((raw / "imagesTr").iterdir())[0]
    note.update({
        "dataset": anchor.folder, "nnunet_version": nnunet_version(bin_dir),
        "channel_names": list(meta["channel_names"].values()), "labels": meta["labels"],
        "array_to_ras": array_to_ras(first_image),
        "commands": [" ".join(c).replace(str(bin_dir) + "/", "") for c in commands],
        "planner": "ExperimentPlanner (default), plans nnUNetPlans",
        "seconds": {"write_and_convert": write_seconds, "extract_fingerprint": fingerprint_s,
                    "plan_experiment": plan_s},
        "machine": f"{os.cpu_count()} CPUs",
    })
    (out / "source.json").write_text(json.dumps(note, indent=2) + "\n")


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def report(name: str, fixtures: Path, seg_plans: Path | None, seg_times: dict | None = None) -> None:
    f = load_fixture(name, fixtures)
    seg_file = seg_plans / f"{name}.plan.json" if seg_plans else None
    seg = json.loads(seg_file.read_text()) if seg_file and seg_file.is_file() else None
    low = f["lowres"]
    rows = [
        ("spacing", f["spacing"], "spacing"), ("median shape", f["median_shape"], None),
        ("patch size", f["patch_size"], "patch_size"), ("batch size", f["batch_size"], "batch_size"),
        ("n_stages", f["n_stages"], "n_stages"), ("kernel sizes", f["kernel_sizes"], "kernel_sizes"),
        ("strides", f["strides"], "strides"),
        ("normalization", [f"{n['scheme']}{' (mask)' if n['use_mask'] else ''}" for n in f["normalization"]],
         "normalization"),
        ("3d_lowres", None if low is None else {k: low[k] for k in ("spacing", "median_shape", "patch_size",
                                                                     "batch_size", "n_stages")}, "lowres"),
        ("orig. median spacing", f["original_median_spacing"], None),
        ("orig. median shape", f["original_median_shape"], None),
        ("rel. size after crop", f["median_relative_size_after_cropping"], None),
    ]
    rows += [(f"intensity ch{c} {f['channel_names'][c]}", {k: v for k, v in sorted(p.items())}, None)
             for c, p in enumerate(f["intensity"])]
    seconds = f["source"]["seconds"]
    print(f"\n== {name} ({f['source']['dataset']}, transpose_forward {f['transpose_forward']}; all lists RAS x, y, z) "
          f"fingerprint {seconds['extract_fingerprint']} s, plan {seconds['plan_experiment']} s")
    if seg_times:
        if "error" in seg_times:
            print(f"  seg plan REFUSED: {seg_times['error']}")
        if "first" in seg_times:
            print(f"  seg plan{' with ' + seg_times['workaround'] if 'workaround' in seg_times else ''}: first "
                  f"{seg_times['first']} s (files read), second {seg_times['second']} s (check cache)")
    for label, value, seg_key in rows:
        line = f"  {label:<24} {fmt(value)}"
        if seg is not None and seg_key is not None:
            line += f"\n  {'':<20} seg {fmt(seg.get(seg_key))}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=[d.name for d in DATASETS],
                        choices=[d.name for d in DATASETS])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_anchor"))
    parser.add_argument("--nnunet-bin", type=Path, default=Path("/work/nnunet-venv/bin"))
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--processes", type=int, default=2, help="nnU-Net's -np (default 2)")
    parser.add_argument("--print-only", action="store_true", help="print the existing fixtures, run nothing")
    parser.add_argument("--seg-plans", type=Path, help="folder of seg's <dataset>.plan.json to print beside")
    parser.add_argument("--seg", action="store_true", help="also run `seg plan` (timed) and print it beside")
    parser.add_argument("--seg-only", action="store_true", help="--seg from the fixtures, nnU-Net not run")
    args = parser.parse_args()
    for anchor in DATASETS:
        if anchor.name in args.datasets and not (args.print_only or args.seg_only):
            build(anchor, args.work, args.nnunet_bin, args.fixtures, args.processes)
    times: dict[str, dict] = {}
    if args.seg or args.seg_only:
        from nnunet_anchor_seg import run_seg, summary

        args.seg_plans = args.work / "seg_plans"
        for anchor in DATASETS:
            if anchor.name in args.datasets:
                times[anchor.name] = run_seg(anchor, args.work, TOTALSEG_CLASSES)
    for name in args.datasets:
        report(name, args.fixtures, args.seg_plans, times.get(name))
    if times:
        print("\n" + summary(args.datasets, args.fixtures, args.seg_plans, times, load_fixture))


if __name__ == "__main__":
    main()
