"""`seg export --ckpt_path X [Y ...] --out DIR`: networks, a preprocessing contract and a standalone predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..command_parser import CommandParser


def parser() -> CommandParser:
    """The options of `seg export`."""
    p = CommandParser(prog="seg export", description=(
        "Write each checkpoint's network (TorchScript or ONNX), contract.json (orientation, spacing, intensity "
        "normalisation, channels, windows, TTA, label values) and predict.py, a predictor that needs only numpy, "
        "nibabel and torch or onnxruntime and writes the label map seg predict writes."))
    p.add_argument("--ckpt_path", nargs="+", required=True, type=Path,
                   help="checkpoint(s); several (e.g. the folds of a CV batch) make an ensemble: one network each")
    p.add_argument("--out", required=True, type=Path, help="the folder to write (refused if not empty)")
    p.add_argument("--format", choices=["torchscript", "onnx"], default="torchscript",
                   help="network file format (onnx needs the `export` extra: pip install 'seg[export]')")
    p.add_argument("--tta_axes", nargs="*", type=int, default=[],
                   help="spatial axes (0 1 2) mirrored at prediction, every combination averaged (default: none)")
    p.add_argument("--data_root", type=Path, default=None,
                   help="the dataset folder, where it is no longer where the checkpoint was trained")
    p.add_argument("--bundle", action="store_true", help="also the MONAI bundle layout (configs/metadata.json, "
                   "configs/inference.json, models/model.ts): one checkpoint, torchscript")
    p.add_argument("--postprocessing", type=Path, default=None, metavar="FILE",
                   help="a cross-validation's <group>_postprocessing.json (seg report --cv): predict.py keeps the "
                        "largest component of each applied step, as seg predict --postprocessing does")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    return p


def main(argv: list[str]) -> int:
    """Export the checkpoints; print where the folder went and how to predict with it."""
    args = parser().parse_args(argv)
    from ...export.writer import ExportRequest, export_models
    from ..inference_options import read_postprocessing

    decision = read_postprocessing(args.postprocessing) if args.postprocessing is not None else None
    out: Optional[Path] = export_models(ExportRequest(args.ckpt_path, args.out, args.format, args.tta_axes,
                                                      args.overwrite, args.data_root, args.bundle, decision))
    print(f"exported {len(args.ckpt_path)} model(s) to {out}: python {out}/predict.py IMAGE --out LABELS.nii.gz")
    return 0
