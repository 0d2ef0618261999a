"""`seg synth KIND --out DIR`: write synthetic cases in a dataset's real layout (no torch imported)."""

from __future__ import annotations

from pathlib import Path

from ...core.errors import SegError
from ...data import synthetic
from ..command_parser import CommandParser


def main(argv: list[str]) -> int:
    """Parse the arguments and run the registered writer."""
    available = synthetic.writers()
    kinds = "; ".join(f"{name}: {registered.description}" for name, registered in available.items())
    parser = CommandParser(prog="seg synth", description="Write synthetic cases in a real layout.")
    parser.add_argument("kind", choices=list(available), help=kinds)
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    parser.add_argument("--cases", type=int, default=12, help="number of cases (default 12)")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 48, 48], help="volume shape (default 48 48 48)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.cases < 1 or min(args.shape) < 8:
        raise SegError(f"--cases {args.cases} --shape {' '.join(map(str, args.shape))}: give 1 or more cases of "
                       f"at least 8 voxels per axis")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SegError(f"--out {args.out} is a file; give a folder (it is created if missing)")
    out = synthetic.write(args.kind, Path(args.out), cases=args.cases, shape=args.shape, seed=args.seed)
    print(f"wrote {args.cases} synthetic {args.kind} cases to {out}")
    return 0
