"""`seg synth KIND --out DIR`: write synthetic cases in a dataset's real layout (no torch imported)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...data import synthetic


def main(argv: list[str]) -> int:
    """Parse the arguments and run the registered writer."""
    available = synthetic.writers()
    kinds = "; ".join(f"{name}: {registered.description}" for name, registered in available.items())
    parser = argparse.ArgumentParser(prog="seg synth", description="Write synthetic cases in a real layout.")
    parser.add_argument("kind", choices=list(available), help=kinds)
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    parser.add_argument("--cases", type=int, default=12, help="number of cases (default 12)")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 48, 48], help="volume shape (default 48 48 48)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = synthetic.write(args.kind, Path(args.out), cases=args.cases, shape=args.shape, seed=args.seed)
    print(f"wrote {args.cases} synthetic {args.kind} cases to {out}")
    return 0
