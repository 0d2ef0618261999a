"""What a catalogue case is, what it may use, and how its promise is checked."""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Optional

from ...helpers import DEMO_CONFIG, REPO, TINY_CONFIG, Mounts

BRATS_CONFIG = REPO / "configs" / "brats.yaml"
TOTALSEG_CONFIG = REPO / "configs" / "totalseg.yaml"
SMOKE_FRAGMENT = REPO / "configs" / "fragments" / "smoke.yaml"


@dataclass
class Setting:
    """What a case may use: the synthetic datasets, a finished run's copy, a scratch folder, and mounts."""

    roots: Callable[[str], Path]  # "msd" | "brats" | "totalseg" -> that synthetic dataset (shared: never change it)
    run: Path
    tmp: Path
    mounts: Optional[Mounts]

    @property
    def root(self) -> Path:
        return self.roots("msd")

    def last(self) -> str:
        return f"--ckpt_path={self.run / 'checkpoints/last.ckpt'}"

    def checkpoint(self, name: str = "last.ckpt") -> Path:
        return self.run / "checkpoints" / name

    def broken_data(self, breaker: Callable[[Path], None], kind: str = "msd") -> Path:
        """A copy of a synthetic dataset with one thing broken by `breaker(data folder)`."""
        data = self.tmp / "data"
        shutil.copytree(self.roots(kind), data, ignore=shutil.ignore_patterns(".seg_cache"))
        breaker(data)
        return data

    def fit(self, root: Path, *overrides: str, kind: str = "msd") -> list[str]:
        """`fit` arguments for a tiny run of dataset `kind` on `root`."""
        configs = {"msd": [DEMO_CONFIG, TINY_CONFIG], "brats": [BRATS_CONFIG, SMOKE_FRAGMENT],
                   "totalseg": [TOTALSEG_CONFIG, SMOKE_FRAGMENT]}[kind]
        extra = ["--data.classes=[liver, spleen]"] if kind == "totalseg" else []
        return ["fit", *(word for config in configs for word in ("--config", str(config))),
                f"--data.init_args.root={root}", *extra, *overrides]


Arguments = Callable[[Setting], list[str]]


@dataclass(frozen=True)
class Case:
    """One promise: `seg <args>` exits `status`, its one `seg: error:` line (or, at status 0 or 75, its output)
    holds `names`, no traceback, nothing that existed changes and no run directory appears.

    `needs` lists what the case uses beyond the MSD demo data ("mounts": root, else skipped; "no-gpu": a machine
    without one, else skipped); `during` is held
    around the command (another process's lock, say); `env` is set for it; `may_write` are globs (relative to
    the scratch folder) of files the command may write or change (a resumed run's checkpoints).
    """

    args: Arguments
    names: str
    status: int = 2
    needs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    during: Optional[Callable[[Setting], ContextManager]] = None
    may_write: tuple[str, ...] = ()

    def held(self, setting: Setting) -> ContextManager:
        return self.during(setting) if self.during is not None else contextlib.nullcontext()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder` (caches aside) with its size and modification time (folders: -1)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if ".seg_cache" in path.parts or path.is_symlink():
            continue
        stat = path.stat()
        found[str(path.relative_to(folder))] = (stat.st_size if path.is_file() else -1,
                                                stat.st_mtime_ns if path.is_file() else 0)
    return found


def changes(before: dict, after: dict, may_write: tuple[str, ...]) -> list[str]:
    """What changed, vanished or appeared outside `may_write` (globs whose `*` spans folders too)."""
    def allowed(name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in may_write)

    changed = [f"changed or lost: {name}" for name, stamp in before.items()
               if after.get(name) != stamp and not allowed(name)]
    appeared = [f"appeared: {name}" for name in after.keys() - before.keys() if not allowed(name)]
    return changed + sorted(appeared)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def empty_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def file_in_the_way(path: Path) -> Path:
    path.write_text("not a folder")
    return path
