"""Writers of synthetic cases in the datasets' real folder layouts (no dataset can be downloaded here).

Each writer is `write(out, *, cases, shape, seed) -> Path` (keywords), registered by name for
`seg synth NAME --out DIR`. The registry holds import paths so a writer's
module (and what it needs) loads only when used.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

from .demo import write_demo_task

WRITERS: dict[str, str] = {
    "demo": "segmentation.data.synthetic.demo:write_demo_task",
}

DESCRIPTIONS: dict[str, str] = {
    "demo": "small MSD-layout CT task (organ + lesion), what configs/demo.yaml trains on",
}


def writer(name: str) -> Callable[[Path, int, Sequence[int], int], Path]:
    """The writer registered as `name`."""
    module, function = WRITERS[name].split(":")
    return getattr(import_module(module), function)


__all__ = ["WRITERS", "DESCRIPTIONS", "writer", "write_demo_task"]
