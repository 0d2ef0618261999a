"""`seg export`'s work: checkpoints to a folder with their networks, `contract.json` and the standalone `predict.py`.

Each checkpoint is rebuilt as `seg predict` rebuilds it (the model from its hyper-parameters and weights, the
datamodule from its stored settings), its network written by `export.network` and its contract made by
`export.contract`; several checkpoints (a fold ensemble) must agree on every contract field but their files.
The folder is assembled beside the target and moved into place at the end: never half-written.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Optional, Sequence

from ..core.errors import SegError
from ..core.log import log
from ..model.module import SegmentationModule
from ..model.postprocessing import Postprocessing
from ..training.checkpointing import load_checkpoint
from . import standalone, standalone_components
from .contract import build_contract, comparable
from .network import SUFFIX, Format, example_windows, export_network

CONTRACT = "contract.json"
PREDICTOR = "predict.py"


@dataclass
class ExportRequest:
    """What to export and where (`seg export`'s options)."""

    checkpoints: Sequence[Path]
    out: Path
    fmt: Format = "torchscript"
    tta_axes: Sequence[int] = ()
    overwrite: bool = False
    data_root: Optional[Path] = None
    bundle: bool = False  # also the MONAI bundle layout (one TorchScript network)
    postprocessing: Optional[Postprocessing] = None  # a cross-validation's decision: its applied steps are exported


def refuse_bad_request(request: ExportRequest) -> None:
    """SegError for a request that cannot be carried out, before anything is read or written."""
    if request.out.exists() and not request.out.is_dir():
        raise SegError(f"seg export: --out {request.out} is a file, not a folder")
    if request.out.is_dir() and any(request.out.iterdir()) and not request.overwrite:
        raise SegError(f"seg export: --out {request.out} exists and is not empty; add --overwrite to replace it")
    bad_axes = [a for a in request.tta_axes if a not in (0, 1, 2)]
    if bad_axes or len(set(request.tta_axes)) != len(request.tta_axes):
        raise SegError(f"seg export: --tta_axes takes distinct spatial axes 0, 1, 2 (got {list(request.tta_axes)})")
    for path in request.checkpoints:
        if not path.is_file():
            raise SegError(f"seg export: checkpoint {path} does not exist (--ckpt_path)")
    if request.bundle and (request.fmt != "torchscript" or len(request.checkpoints) != 1):
        raise SegError("seg export --bundle takes one checkpoint and --format torchscript (a MONAI bundle holds one "
                       "models/model.ts)")
    if request.data_root is not None and not request.data_root.is_dir():
        raise SegError(f"seg export: --data_root {request.data_root} is not a folder")


def load_model(checkpoint: dict, path: Path) -> SegmentationModule:
    """The checkpoint's model with its weights, uncompiled, in eval mode."""
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    if "state_dict" not in checkpoint or "architecture" not in hparams:
        raise SegError(f"seg export: {path} is not a seg model checkpoint (no model hyper-parameters or weights)")
    model = SegmentationModule(**{**hparams, "compile": False})
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def load_datamodule(checkpoint: dict, path: Path, data_root: Optional[Path]):
    """The checkpoint's datamodule (its stored settings; `data_root` replaces the root it was trained on)."""
    settings = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    class_path = settings.pop("_class_path", None)
    if not class_path:
        raise SegError(f"seg export: {path} holds no datamodule settings (not written by seg fit)")
    settings = {k: v for k, v in settings.items() if not k.startswith("_")}
    if data_root is not None:
        settings["root"] = str(data_root)
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name.startswith("segmentation."):
        raise SegError(f"seg export: {path} names a datamodule outside seg ({class_path})")
    try:
        return getattr(import_module(module_name), class_name)(**settings)
    except SegError:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise SegError(f"seg export: the dataset of {path} at {settings.get('root')} cannot be read ({err}); "
                       f"give its folder with --data_root") from None


def export_one(path: Path, index: int, request: ExportRequest, folder: Path) -> dict:
    """Write checkpoint `path`'s network into `folder`; its contract (naming that file)."""
    checkpoint = load_checkpoint(path)
    model = load_model(checkpoint, path)
    datamodule = load_datamodule(checkpoint, path, request.data_root)
    h = model.hparams
    name = f"model_{index}{SUFFIX[request.fmt]}"
    windows = example_windows(int(h.in_channels), [int(r) for r in h.roi_size], int(h.sw_batch_size))
    export_network(model.net, windows, request.fmt, folder / name)
    return build_contract(dict(h), datamodule, [name], request.fmt, request.tta_axes, [str(path)],
                          request.postprocessing)


def export_models(request: ExportRequest) -> Path:
    """Export every checkpoint of `request` into `request.out` (replaced only with `overwrite`); the folder."""
    refuse_bad_request(request)
    partial = request.out.parent / f".{request.out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        contracts = [export_one(Path(p), i, request, partial) for i, p in enumerate(request.checkpoints)]
        first = contracts[0]
        for path, contract in zip(request.checkpoints[1:], contracts[1:]):
            if comparable(contract) != comparable(first):
                differing = sorted(k for k in comparable(first) if comparable(contract).get(k) != first[k])
                raise SegError(f"seg export: {path} and {request.checkpoints[0]} differ in {', '.join(differing)}: "
                               f"they cannot be exported as one ensemble")
        merged = {**first, "networks": [n for c in contracts for n in c["networks"]],
                  "checkpoints": [p for c in contracts for p in c["checkpoints"]]}
        (partial / CONTRACT).write_text(json.dumps(merged, indent=2) + "\n")
        shutil.copyfile(standalone.__file__, partial / PREDICTOR)
        shutil.copyfile(standalone_components.__file__, partial / Path(standalone_components.__file__).name)
        if request.bundle:
            from .bundle import write_bundle

            write_bundle(partial, merged, partial / merged["networks"][0])
        if request.out.exists():
            shutil.rmtree(request.out)
        partial.rename(request.out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info(f"wrote {len(contracts)} network(s), {CONTRACT} and {PREDICTOR} to {request.out}")
    return request.out
