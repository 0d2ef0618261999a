"""The postprocessing decision of a cross-validation: made on every fold's kept validation label maps, pooled.

`seg report --cv` (and `seg batch --folds K` at its end) writes `<group>_postprocessing.json` beside the CV
table: `model.postprocessing`'s decision (nnU-Net's keep-the-largest-component rule) on the label maps each
fold predicted for its validation cases (`<fold run>/cv/predictions/`, `training.fold_predictions`), each case
once, against its label file as the user has it. `seg test|predict --postprocessing FILE` applies it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from ..core.constants import FOLD_MANIFEST as MANIFEST
from ..core.log import log
from ..core.storage import write_text_atomically

if TYPE_CHECKING:  # (imported when deciding: the module stays light for seg report)
    from ..model.postprocessing import Postprocessing


def label_map(path: Path) -> np.ndarray:
    """The voxels of a label file as integers (`data.nifti.label_voxels`)."""
    from ..data.nifti import label_voxels, load_nifti

    return label_voxels(load_nifti(path))


def loader(prediction: Path, truth: Path) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """A callable reading one case's (prediction, truth) label maps when called."""
    return lambda: (label_map(prediction), label_map(truth))


def decide_for_group(group: str, folds: dict[int, Path], destination: Path) -> Optional[Postprocessing]:
    """`destination` (`<group>_postprocessing.json`) decided on the pooled kept label maps of `folds` (fold ->
    run directory); the decision, or None (said) where a fold kept no label maps or the folds' classes differ."""
    from ..model.postprocessing import decide_postprocessing

    cases: dict[str, Callable] = {}
    classes: Optional[dict] = None
    for fold, run in sorted(folds.items()):
        folder = run / "cv" / "predictions"
        if not (folder / MANIFEST).is_file():
            log.warning(f"{group}: fold {fold} kept no label maps with a manifest in {folder} (scored before seg "
                        f"kept them? delete {run / 'cv'} and run seg report --cv again): no postprocessing decided")
            return None
        manifest = json.loads((folder / MANIFEST).read_text())
        found = {name: tuple(values) for name, values in manifest["classes"].items()}
        if classes is not None and found != classes:
            log.warning(f"{group}: fold {fold}'s classes {found} differ from {classes}: no postprocessing decided")
            return None
        classes = found
        for case, truth in manifest["truths"].items():
            if (folder / f"{case}.nii.gz").is_file():
                cases[case] = loader(folder / f"{case}.nii.gz", Path(truth))
    if not cases or classes is None:
        log.warning(f"{group}: no kept validation label maps: no postprocessing decided")
        return None
    decision = decide_postprocessing([cases[case] for case in sorted(cases)], classes)
    write_text_atomically(destination, decision.to_json())
    return decision
