"""Writers of synthetic cases in the datasets' real folder layouts (no dataset can be downloaded here).

Each writer is `write(out, *, cases, shape, seed) -> Path` (keywords), registered by name for
`seg synth NAME --out DIR`. The registry holds import paths so a writer's
module (and what it needs) loads only when used.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

from .msd import write_demo_task

WRITERS: dict[str, str] = {
    "brats": "segmentation.data.synthetic.brats:write_brats2021",
    "brats2023": "segmentation.data.synthetic.brats:write_brats2023",
    "demo": "segmentation.data.synthetic.msd:write_demo_task",
    "msd": "segmentation.data.synthetic.msd:write_liver_task",
    "totalseg": "segmentation.data.synthetic.totalseg:write_totalseg",
}

DESCRIPTIONS: dict[str, str] = {
    "brats": "BraTS 2021 stand-in (case folders, 4 MRI modalities, labels 1 necrotic, 2 edema, 4 enhancing)",
    "brats2023": "BraTS 2023+ GLI stand-in (BraTS-GLI-* folders, t1n/t1c/t2w/t2f, labels 1, 2, 3 enhancing)",
    "demo": "small MSD-layout CT task (organ + lesion), what configs/demo.yaml trains on",
    "msd": "Task03_Liver stand-in (MSD layout, CT, liver + cancer, anisotropic voxels)",
    "totalseg": "TotalSegmentator v2 stand-in (sNNNN/ct.nii.gz, 117 masks per case, meta.csv)",
}


def writer(name: str) -> Callable[[Path, int, Sequence[int], int], Path]:
    """The writer registered as `name`."""
    module, function = WRITERS[name].split(":")
    return getattr(import_module(module), function)


__all__ = ["WRITERS", "DESCRIPTIONS", "writer", "write_demo_task"]
