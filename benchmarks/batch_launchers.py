"""One 4-run batch three ways: serial, `--launcher local --parallel 2`, and a SLURM job array (`--max-parallel 2`).

Run: python benchmarks/batch_launchers.py [--epochs 10] [--out /tmp/launchers]   (prints a Markdown table)

The same tiny runs each time (demo config + tests/tiny.yaml on 8 synthetic CT cases, unet x none, cosine,
polynomial, reduce_on_plateau). Wall time: from the command's start to the last run's end (for SLURM, from `sbatch`
to the last task's `ok` in state.json, polled every 0.2 s). The serial batch uses every core for its one run; the
parallel and SLURM runs get one thread each (OMP_NUM_THREADS=1), so those two train the same weights bit for bit
(said in the last column). SLURM is the one-node cluster of tests/slurm (started if needed, stopped if started).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.slurm.node import slurm_node  # noqa: E402  (the tests' one-node cluster)

SCHEDULES = ["none", "cosine", "polynomial", "reduce_on_plateau"]


def batch_command(data: Path, epochs: int, *launcher: str) -> list[str]:
    return [sys.executable, "-m", "segmentation", "batch", "--config", str(REPO / "configs/demo.yaml"), "--config",
            str(REPO / "tests/tiny.yaml"), "--data", str(data), "--archs", "unet", "--schedulers", *SCHEDULES,
            "--epochs", str(epochs), "--no-estimate", "--name", "bench", *launcher, "--", "--data.cache=store"]


def timed(folder: Path, command: list[str], threads: str | None) -> float:
    folder.mkdir(parents=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": threads} if threads else {})}
    started = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, check=True)
    if "slurm" in command:
        state = folder / "lightning_logs/batches/bench/state.json"
        while not all(run["status"] == "ok" for run in json.loads(state.read_text()).values()):
            time.sleep(0.2)
    return time.perf_counter() - started


def same_weights(one: Path, other: Path) -> bool:
    for schedule in SCHEDULES:
        run = f"lightning_logs/demo_unet_{schedule}/version_0/checkpoints/last.ckpt"
        a = torch.load(one / run, map_location="cpu", weights_only=False)["state_dict"]
        b = torch.load(other / run, map_location="cpu", weights_only=False)["state_dict"]
        if not all(torch.equal(a[k], b[k]) for k in a):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("/tmp/seg-batch-launchers"))
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: give a new --out")
    data = args.out / "demo"
    subprocess.run([sys.executable, "-m", "segmentation", "synth", "demo", "--out", str(data), "--cases", "8",
                    "--shape", "32", "32", "32"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "segmentation", "fit", "--config", str(REPO / "configs/demo.yaml"),
                    "--config", str(REPO / "tests/tiny.yaml"), "--data.init_args.root", str(data),
                    "--trainer.max_epochs=1", "--data.cache=store"], cwd=args.out, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the store is built once, before any timing
    seconds = {"serial (all cores, one run at a time)": timed(args.out / "serial", batch_command(data, args.epochs),
                                                              None),
               "--launcher local --parallel 2 (1 thread each)": timed(
                   args.out / "local", batch_command(data, args.epochs, "--launcher", "local", "--parallel", "2"),
                   "1")}
    with slurm_node() as cannot:
        if cannot:
            print(f"SLURM cannot run here: {cannot}")
        else:
            seconds["--launcher slurm --max-parallel 2 (1 thread each)"] = timed(
                args.out / "slurm", batch_command(data, args.epochs, "--launcher", "slurm", "--max-parallel", "2",
                                                  "--gres", "none"), "1")
    print(f"4 runs x {args.epochs} epochs, {os.cpu_count()} cores\n\n| launcher | wall (s) | vs serial |\n"
          f"| --- | --- | --- |")
    serial = next(iter(seconds.values()))
    for launcher, wall in seconds.items():
        print(f"| {launcher} | {wall:.1f} | {wall / serial:.2f} |")
    if (args.out / "slurm").exists():
        print(f"\nlocal and SLURM weights bit for bit equal: {same_weights(args.out / 'local', args.out / 'slurm')}")


if __name__ == "__main__":
    main()
