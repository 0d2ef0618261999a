"""Time per case of the exported standalone predictor (TorchScript, ONNX) against `seg predict`, and their agreement.

    python benchmarks/export_predictor.py --ckpt_path RUN/checkpoints/best.ckpt --images data/demo/imagesTr \
        --work /tmp/export_bench [--cases 4]     # from the folder the run was trained in (its data paths)

`seg predict` runs once over the cases (one process: its time per case includes one start-up shared by all);
each exported predictor runs in one process that imports `predict.py` and loops over the cases (the same
start-up sharing), timed both as a whole and per case inside the loop. Agreement: voxels equal and Dice per
label value against `seg predict`'s files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nibabel as nib
import numpy as np

LOOP = """
import json, sys, time
sys.path.append({purelib!r})
sys.path.insert(0, {folder!r})
started = time.perf_counter()
import predict
imported = time.perf_counter() - started
times = []
for image, out in json.loads({pairs!r}):
    t = time.perf_counter()
    predict.main([image, "--out", out])
    times.append(time.perf_counter() - t)
print(json.dumps({{"import": imported, "cases": times}}))
"""


def seg(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segmentation", *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def standalone(folder: Path, images: list[Path], out: Path) -> tuple[float, dict]:
    out.mkdir(parents=True, exist_ok=True)
    pairs = json.dumps([[str(i), str(out / i.name)] for i in images])
    script = LOOP.format(purelib=sysconfig.get_paths()["purelib"], folder=str(folder), pairs=pairs)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-S", "-I", "-c", script], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(done.stdout.strip().splitlines()[-1])


def agreement(ours: Path, theirs: Path, images: list[Path]) -> tuple[float, dict[int, float]]:
    equal, total, dice = 0, 0, {}
    for image in images:
        a = np.asarray(nib.load(ours / image.name).dataobj)
        b = np.asarray(nib.load(theirs / image.name).dataobj)
        equal, total = equal + int((a == b).sum()), total + a.size
        for value in sorted(set(np.unique(b).tolist()) - {0}):
            both = 2 * np.logical_and(a == value, b == value).sum()
            dice.setdefault(value, []).append(both / ((a == value).sum() + (b == value).sum()))
    return 100 * equal / total, {v: float(min(d)) for v, d in dice.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt_path", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--cases", type=int, default=0, help="first N images only (0: all)")
    args = parser.parse_args()
    images = sorted(args.images.glob("*.nii.gz"))[:args.cases or None]
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt_path.resolve()
    listed = "[" + ",".join(str(i.resolve()) for i in images) + "]"
    seconds = seg("predict", "--ckpt_path", str(ckpt), f"--data.predict_images={listed}",
                  f"--prediction_dir={args.work / 'seg_predict'}", cwd=Path.cwd())
    one = seg("predict", "--ckpt_path", str(ckpt), f"--data.predict_images=[{images[0].resolve()}]",
              f"--prediction_dir={args.work / 'seg_predict_one'}", cwd=Path.cwd())
    print(f"{len(images)} cases, shape {nib.load(images[0]).shape}")
    print(f"seg predict: {seconds:.1f} s in all, {seconds / len(images):.2f} s per case (start-up included); one case "
          f"alone {one:.1f} s: {(seconds - one) / max(len(images) - 1, 1):.3f} s per further case")
    for fmt in ("torchscript", "onnx"):
        exported = seg("export", "--ckpt_path", str(ckpt), "--out", str(args.work / fmt), "--format", fmt,
                       "--overwrite", cwd=Path.cwd())
        wall, figures = standalone(args.work / fmt, images, args.work / f"{fmt}_out")
        equal, dice = agreement(args.work / f"{fmt}_out", args.work / "seg_predict", images)
        per_case = figures["cases"]
        print(f"{fmt}: export {exported:.1f} s; predict.py {wall:.1f} s in all, {wall / len(images):.2f} s per case "
              f"(start-up included); in the loop: first case {per_case[0]:.2f} s (loads torch or onnxruntime), then "
              f"median {np.median(per_case[1:]):.3f} s per case; voxels equal {equal:.4f}%, lowest Dice per label "
              + ", ".join(f"{v}: {d:.5f}" for v, d in dice.items()))


if __name__ == "__main__":
    main()
