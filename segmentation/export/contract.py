"""The preprocessing contract of an exported model: what `predict.py` (or any other tool) must do to a NIfTI file.

The contract is read from the model's and the datamodule's own settings (the same objects `seg predict`
builds from a checkpoint), so it states exactly what `seg predict` does: reorient to RAS, resample to the
target spacing, normalise (a clipped window scaled to a range: a CT window, or a planned CT z-score with the
training statistics; or a z-score per channel whose statistics are each image's own), Gaussian-blended sliding
windows, mirror TTA, the label values written back, and the largest-component steps of a cross-validation's
postprocessing decision (`seg export --postprocessing`).
"""

from __future__ import annotations

import itertools
from typing import Any, Optional, Sequence, cast

import torch
from monai import transforms as mt

from .. import __version__
from ..core.errors import SegError
from ..model.postprocessing import CONNECTIVITY, Postprocessing

FORMAT = "seg-export"
VERSION = 1
ORIENTATION = "RAS"  # data.pipelines.spatial_steps
SIGMA_SCALE = 0.125  # MONAI sliding_window_inference's default, which seg uses (model.module.infer_volume)
MAX_REGIONS_CHECKED = 8  # region precedence is checked on every combination of up to this many regions


def intensity_of(transform: mt.Transform) -> dict:
    """The normalisation of a datamodule's `intensity()` (a planned `normalization` or the dataset's own) as contract
    fields: a planned CT z-score is a `window` whose range is [(lo - mean) / std, (hi - mean) / std]."""
    if isinstance(transform, mt.ScaleIntensityRanged):
        s = transform.scaler
        if not s.clip:
            raise SegError("seg export: an unclipped intensity window cannot be exported yet")
        window = [float(cast(float, s.a_min)), float(cast(float, s.a_max))]
        return {"kind": "window", "window": window, "range": [float(cast(float, s.b_min)), float(cast(float, s.b_max))],
                "clip": True, "statistics": "fixed: (x - window[0]) / (window[1] - window[0]) scaled to range, clipped"}
    if isinstance(transform, mt.NormalizeIntensityd):
        n = transform.normalizer
        if n.subtrahend is not None or n.divisor is not None or not n.channel_wise:
            raise SegError("seg export: only a per-channel z-score computed on each image can be exported")
        over = "over its nonzero voxels" if n.nonzero else "over all its voxels"
        return {"kind": "zscore", "nonzero": bool(n.nonzero), "channel_wise": True,
                "statistics": f"each image's own, per channel, {over}: mean and population std (std 0 counts as 1)"
                              + ("; zero voxels stay 0" if n.nonzero else "")}
    raise SegError(f"seg export: the intensity transform {type(transform).__name__} cannot be exported yet")


def softmax_output(datamodule, class_names: Sequence[str], out_channels: int) -> dict:
    """Class probabilities: the argmax channel's label value (`datamodule.prediction_to_labels` of each index)."""
    indices = torch.arange(out_channels).reshape(1, out_channels, 1, 1)
    values = datamodule.prediction_to_labels(indices).reshape(-1).tolist()
    return {"activation": "softmax", "discretise": "argmax of the probabilities on the input's grid",
            "class_names": ["background", *class_names], "label_values": [int(v) for v in values]}


def region_output(datamodule, class_names: Sequence[str], out_channels: int) -> dict:
    """Sigmoid regions (BraTS): each region's label value and the order they are written in (an inner region
    overwrites an outer one), read from `datamodule.prediction_to_labels` and checked on every combination."""
    if out_channels > MAX_REGIONS_CHECKED:
        raise SegError(f"seg export: {out_channels} overlapping regions are more than can be checked")

    def labels_of(channels: Sequence[int]) -> int:
        masks = torch.zeros((out_channels, 1, 1, 1), dtype=torch.bool)
        masks[list(channels)] = True
        return int(datamodule.prediction_to_labels(masks).reshape(-1)[0])

    value = {c: labels_of([c]) for c in range(out_channels)}
    # a region comes after (overwrites) the regions whose value loses when both are predicted
    order = sorted(range(out_channels), key=lambda c: sum(labels_of([c, o]) == value[c] for o in value if o != c))
    for k in range(2, out_channels + 1):
        for combo in itertools.combinations(range(out_channels), k):
            if labels_of(combo) != value[max(combo, key=order.index)]:
                raise SegError("seg export: the dataset's regions are not written by a fixed precedence")
    regions = [{"name": class_names[c], "channel": c, "value": value[c]} for c in order]
    return {"activation": "sigmoid", "discretise": "each region's probability > 0.5 on the input's grid, written "
            "in this order (later regions overwrite earlier ones)", "regions": regions}


def postprocessing_steps(decision: Optional[Postprocessing]) -> list[dict]:
    """The contract's `postprocessing`: the decision's applied steps in order, each keeping the largest 6-connected
    component of the voxels of its label values (the others of those values become 0); none without a decision."""
    return [{"name": step.name, "values": [int(v) for v in step.values], "keep": "largest component",
             "connectivity": CONNECTIVITY} for step in (decision.applied() if decision else [])]


def build_contract(hparams: dict, datamodule, networks: list[str], backend: str, tta_axes: Sequence[int],
                   checkpoints: Optional[list[str]] = None, postprocessing: Optional[Postprocessing] = None) -> dict:
    """The contract of a model (`hparams`: SegmentationModule's) and its datamodule, with its network files and
    the applied steps of a cross-validation's postprocessing decision (checked against the dataset's classes)."""
    h = datamodule.hparams
    class_names = list(hparams.get("class_names") or datamodule.class_names)
    out_channels = int(hparams["out_channels"])
    output = (region_output if hparams.get("multilabel") else softmax_output)(datamodule, class_names, out_channels)
    if postprocessing is not None:
        postprocessing.refuse_other_classes(datamodule.class_values(), "seg export: the postprocessing decision")
    return {
        "format": FORMAT,
        "version": VERSION,
        "seg_version": __version__,
        "backend": backend,
        "networks": networks,
        "checkpoints": checkpoints or [],
        "architecture": hparams.get("architecture"),
        "preprocessing": {
            "channels": list(datamodule.channel_names),
            "orientation": ORIENTATION,
            "spacing": [float(s) for s in h.spacing] if h.spacing else None,
            "interpolation": {"image": "trilinear", "padding": "border", "grid": "MONAI Spacing (corner-aligned)"},
            "intensity": intensity_of(datamodule.intensity()),
        },
        "window": {
            "patch_size": [int(r) for r in hparams["roi_size"]],
            "overlap": float(hparams.get("sw_overlap", 0.25)),
            "blending": "gaussian",
            "sigma_scale": SIGMA_SCALE,
            "batch_size": int(hparams.get("sw_batch_size", 1)),
            "padding": "zeros, centred, where the image is smaller than a window",
        },
        "tta_axes": [int(a) for a in tta_axes],
        "output": output,
        "inversion": "probabilities resampled trilinearly (border padding) back to the RAS grid, reoriented to the "
                     "input's, averaged over networks and mirrors, then discretised",
        "postprocessing": postprocessing_steps(postprocessing),
    }


def comparable(contract: dict) -> dict[str, Any]:
    """The fields every model of an ensemble must share (all but its own network and checkpoint files)."""
    return {key: value for key, value in contract.items() if key not in ("networks", "checkpoints", "architecture")}
