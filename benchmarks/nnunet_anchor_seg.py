"""The seg side of the nnU-Net anchor (`benchmarks/nnunet_anchor.py --seg / --seg-only`): `seg plan` on the same data.

Per dataset, `seg plan` runs as a subprocess on the anchor's data in a seg layout (demo, liver, brats, totalseg: the
seg-layout sources the anchor wrote; anisotropic, large: an MSD copy of nnU-Net's raw folder, symbolic links and a
dataset.json), composed with `configs/fragments/nnunet.yaml` (nnU-Net's network), no store built, its caches in
`<work>/seg_cache/<dataset>` (removed first: the first run reads every file, the second reads only the check's
cache). The plan goes to `<work>/seg_plans/<dataset>.yaml` with `<dataset>.plan.json` beside it; `summary` is a
markdown table of both planners for BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEG = [sys.executable, "-m", "segmentation"]
NNUNET_FRAGMENT = "configs/fragments/nnunet.yaml"
CONFIGS = {"demo": "configs/demo.yaml", "liver": "configs/msd_liver.yaml", "brats": "configs/brats.yaml",
           "totalseg": "configs/totalseg.yaml", "anisotropic": "configs/msd_liver.yaml",
           "large": "configs/msd_liver.yaml"}
RAW_ONLY = ("anisotropic", "large")  # written only in nnU-Net's raw layout: seg reads an MSD copy


def msd_copy(raw: Path, target: Path) -> Path:
    """An MSD task folder over nnU-Net raw folder `raw`: <case>.nii.gz links to <case>_0000 / the label."""
    shutil.rmtree(target, ignore_errors=True)
    for sub in ("imagesTr", "labelsTr"):
        (target / sub).mkdir(parents=True)
    meta = json.loads((raw / "dataset.json").read_text())
    training = []
    for label in sorted((raw / "labelsTr").glob("*.nii.gz")):
        image = raw / "imagesTr" / label.name.replace(".nii.gz", "_0000.nii.gz")
        for source, link in ((image, target / "imagesTr" / label.name), (label, target / "labelsTr" / label.name)):
            link.symlink_to(os.path.relpath(source, link.parent))
        training.append({"image": f"./imagesTr/{label.name}", "label": f"./labelsTr/{label.name}"})
    names = {value: name for name, value in meta["labels"].items()}
    msd = {"name": raw.name, "modality": {"0": "CT"}, "labels": {str(v): names[v] for v in sorted(names)},
           "numTraining": len(training), "training": training}
    (target / "dataset.json").write_text(json.dumps(msd, indent=2))
    return target


def seg_root(anchor, work: Path) -> Path:
    """The dataset's folder in a seg layout, written with the anchor's own maker (same writer, same seed) if missing."""
    source, raw = work / "source" / anchor.name, work / "nnUNet_raw" / anchor.folder
    if anchor.name in RAW_ONLY:
        if not (raw / "dataset.json").is_file():
            print(f"{raw} missing: writing it ({anchor.name})", flush=True)
            anchor.make(source, raw)
        return msd_copy(raw, work / "msd" / anchor.name)
    if not source.is_dir() or not any(source.iterdir()):
        print(f"{source} missing: writing it ({anchor.name})", flush=True)
        scratch = work / "regenerated_raw" / anchor.folder
        shutil.rmtree(scratch, ignore_errors=True)
        anchor.make(source, scratch)  # the raw copy it also writes is not nnU-Net's: kept aside
    return source


def plan_command(name: str, root: Path, work: Path, classes: list[str]) -> list[str]:
    command = [*SEG, "plan", "--config", CONFIGS[name], "--config", NNUNET_FRAGMENT, "--data.root", str(root),
               "--data.cache", "none", "--data.num_workers", "0", "--data.cache_dir", str(work / "seg_cache" / name),
               "--out", str(work / "seg_plans" / f"{name}.yaml")]
    if name == "totalseg":
        command += ["--data.classes", json.dumps(classes)]
    return command


def timed(command: list[str]) -> float:
    """Wall seconds of `command` (interpreter start and imports included); its own 'in X s' is printed."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 2)
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {' '.join(command)}\n{result.stderr[-3000:]}")
    inside = re.search(r" in ([0-9.]+) s; train it", result.stdout)
    print(f"  {seconds} s wall, {inside.group(1) if inside else '?'} s as seg plan reports it", flush=True)
    return seconds


def run_seg(anchor, work: Path, classes: list[str]) -> dict:
    """`seg plan` on `anchor`'s data twice (cache cleared, then warm): {'first': s, 'second': s, 'command'}, or
    {'error': text} when it fails (the other datasets still run)."""
    (work / "seg_plans").mkdir(parents=True, exist_ok=True)
    (work / "seg_plans" / f"{anchor.name}.plan.json").unlink(missing_ok=True)
    shutil.rmtree(work / "seg_cache" / anchor.name, ignore_errors=True)
    command = plan_command(anchor.name, seg_root(anchor, work), work, classes)
    print("$", " ".join(command), flush=True)
    try:
        return {"first": timed(command), "second": timed(command), "command": command}
    except Exception as err:  # reported beside nnU-Net's plan
        print(f"seg plan failed on {anchor.name}: {err}", flush=True)
        return {"error": str(err).splitlines()[-1]}


def fmt_list(values) -> str:
    return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def nn_norm(f: dict) -> str:
    schemes = {n["scheme"].removesuffix("Normalization") + (" mask" if n["use_mask"] else "")
               for n in f["normalization"]}
    text = ", ".join(sorted(schemes))
    if schemes == {"CT"}:
        p = f["intensity"][0]
        text += f" [{p['percentile_00_5']:g}, {p['percentile_99_5']:g}] {p['mean']:.4g}/{p['std']:.4g}"
    return text


def seg_norm(n: dict | None) -> str:
    if not n:
        return "-"
    if n.get("scheme") == "ct":
        lo, hi = n["clip"]
        return f"CT [{lo:g}, {hi:g}] {n['mean']:.4g}/{n['std']:.4g}"
    return f"{n.get('scheme')}{' nonzero' if n.get('nonzero') else ''}"


def low(stage: dict | None) -> str:
    if not stage:
        return "none"
    return f"{fmt_list([round(s, 3) for s in stage['spacing']])} mm, {fmt_list(stage['patch_size'])}"


def differences(f: dict, seg: dict) -> list[str]:
    """The plan fields where seg and nnU-Net differ (normalisation compared on scheme and statistics)."""
    out = [key for key in ("spacing", "patch_size", "batch_size", "n_stages", "kernel_sizes", "strides")
           if not close(f[key], seg.get(key))]
    nn, mine = nn_norm(f).replace("ZScore", "zscore").replace(" mask", " nonzero"), seg_norm(seg["normalization"])
    if nn.split(" [")[0] != mine.split(" [")[0]:
        out.append("normalization scheme")
    elif nn != mine:
        out.append("normalization statistics")
    if (f["lowres"] is None) != (seg.get("lowres") is None) or (
            f["lowres"] and not all(close(f["lowres"][k], seg["lowres"].get(k)) for k in ("spacing", "patch_size"))):
        out.append("lowres")
    return out


def close(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-3 * max(1.0, abs(a))
    return a == b


def summary(names: list[str], fixtures: Path, plans: Path, times: dict, load_fixture) -> str:
    """A markdown table, one row per dataset: nnU-Net | seg for each plan field, and both planners' seconds."""
    head = ["dataset", "spacing nnU-Net", "spacing seg", "patch nnU-Net", "patch seg", "batch", "stages",
            "strides / kernels agree", "normalisation nnU-Net", "normalisation seg", "lowres nnU-Net", "lowres seg",
            "nnU-Net fingerprint + plan s", "seg plan s first / second", "differ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        f, path = load_fixture(name, fixtures), plans / f"{name}.plan.json"
        seconds = f["source"]["seconds"]
        nn_s = f"{seconds['extract_fingerprint']:g} + {seconds['plan_experiment']:g}"
        t = times.get(name, {})
        seg_s = f"{t['first']:g} / {t['second']:g}" if "first" in t else ("error" if "error" in t else "-")
        seg = json.loads(path.read_text()) if path.is_file() and "first" in t else None
        if seg is None:
            cells = [fmt_list(f["spacing"]), "-", fmt_list(f["patch_size"]), "-", f"{f['batch_size']} / -",
                     f"{f['n_stages']} / -", "-", nn_norm(f), "-", low(f["lowres"]), "-", nn_s, seg_s, "no seg plan"]
        else:
            agree = (f"{'yes' if close(f['strides'], seg['strides']) else 'no'} / "
                     f"{'yes' if close(f['kernel_sizes'], seg['kernel_sizes']) else 'no'}")
            cells = [fmt_list(f["spacing"]), fmt_list([round(s, 4) for s in seg["spacing"]]), fmt_list(f["patch_size"]),
                     fmt_list(seg["patch_size"]), f"{f['batch_size']} / {seg['batch_size']}",
                     f"{f['n_stages']} / {seg['n_stages']}", agree, nn_norm(f), seg_norm(seg["normalization"]),
                     low(f["lowres"]), low(seg.get("lowres")), nn_s, seg_s, ", ".join(differences(f, seg)) or "none"]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)
