"""The MONAI bundle layout of an export (`seg export --bundle`): configs/metadata.json, configs/inference.json and
models/model.ts, for MONAI Label, 3D Slicer's MONAI Auto3DSeg/bundle tools and `python -m monai.bundle run`.

The inference config states the contract in MONAI's own transforms (the ones `seg predict` runs): load, RAS,
spacing, intensity, Gaussian sliding windows, softmax or sigmoid, inversion to the input's grid (probabilities,
linear), then argmax (class values = channel indices) or region masks > 0.5 (one channel per region), saved with
the input's affine. One network: an ensemble or mirror TTA is `predict.py`'s.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import monai
import numpy as np
import torch

from ..core.errors import SegError

METADATA = Path("configs") / "metadata.json"
INFERENCE = Path("configs") / "inference.json"
MODEL = Path("models") / "model.ts"


def intensity_step(intensity: dict) -> dict:
    """The contract's normalisation as a MONAI transform config."""
    if intensity["kind"] == "window":
        (low, high), (b_low, b_high) = intensity["window"], intensity["range"]
        return {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": low, "a_max": high, "b_min": b_low,
                "b_max": b_high, "clip": True}
    return {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": intensity["nonzero"], "channel_wise": True}


def inference_config(contract: dict) -> dict:
    """`configs/inference.json`: MONAI's evaluator over `dataset_dir`'s NIfTI files, writing to `output_dir`."""
    pre, window, output = contract["preprocessing"], contract["window"], contract["output"]
    steps = [{"_target_": "LoadImaged", "keys": "image", "ensure_channel_first": True, "image_only": True},
             {"_target_": "Orientationd", "keys": "image", "axcodes": pre["orientation"]}]
    if pre["spacing"]:
        steps.append({"_target_": "Spacingd", "keys": "image", "pixdim": pre["spacing"], "mode": "bilinear"})
    steps += [intensity_step(pre["intensity"]), {"_target_": "EnsureTyped", "keys": "image"}]
    softmax = output["activation"] == "softmax"
    discrete = ({"_target_": "AsDiscreted", "keys": "pred", "argmax": True} if softmax
                else {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.5})
    return {
        "imports": ["$import glob", "$import numpy", "$import torch"],
        "bundle_root": ".",
        "dataset_dir": "$@bundle_root + '/images'",
        "output_dir": "$@bundle_root + '/eval'",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/*.nii*')))",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location=@device)",
        "network": "$@network_def.eval()",
        "preprocessing": {"_target_": "Compose", "transforms": steps},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]",
                    "transform": "@preprocessing"},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": window["patch_size"],
                    "sw_batch_size": window["batch_size"], "overlap": window["overlap"], "mode": "gaussian",
                    "sigma_scale": window["sigma_scale"]},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": softmax, "sigmoid": not softmax},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            discrete,
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
             "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": False},
        ]},
        # a plain loop (MONAI's SupervisedEvaluator would need pytorch-ignite)
        "initialize": ["$torch.set_grad_enabled(False)"],
        "run": ["$[@postprocessing({**d, 'pred': @inferer(d['image'][None].to(@device), @network)[0]}) "
                "for d in @dataset]"],
    }


def metadata(contract: dict, in_channels: int, out_channels: int) -> dict:
    """`configs/metadata.json`: versions, and the network's input and output (MONAI's network_data_format)."""
    pre, output = contract["preprocessing"], contract["output"]
    names = output.get("class_names") or [r["name"] for r in sorted(output["regions"], key=lambda r: r["channel"])]
    patch = contract["window"]["patch_size"]
    return {
        "version": "0.1.0",
        "changelog": {"0.1.0": "exported by seg export"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "name": f"seg {contract.get('architecture')}",
        "task": "3D segmentation",
        "description": "Exported by `seg export`; contract.json beside it states the preprocessing.",
        "authors": "seg",
        "copyright": "",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": ",".join(pre["channels"]),
                                 "num_channels": in_channels, "spatial_shape": patch, "dtype": "float32",
                                 "value_range": [], "is_patch_data": True,
                                 "channel_def": {str(i): n for i, n in enumerate(pre["channels"])}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": out_channels,
                                 "spatial_shape": patch, "dtype": "float32", "value_range": [],
                                 "is_patch_data": True, "channel_def": {str(i): n for i, n in enumerate(names)}}},
        },
    }


def write_bundle(folder: Path, contract: dict, network: Path) -> None:
    """Write the bundle layout into `folder` from the contract and its TorchScript network file."""
    output = contract["output"]
    in_channels = len(contract["preprocessing"]["channels"])
    out_channels = len(output.get("class_names") or output["regions"])
    if contract["output"]["activation"] == "softmax" and contract["output"]["label_values"] != list(
            range(out_channels)):
        raise SegError("seg export --bundle: the label values are not the class indices; use predict.py")
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(network, folder / MODEL)
    (folder / INFERENCE).write_text(json.dumps(inference_config(contract), indent=2) + "\n")
    (folder / METADATA).write_text(json.dumps(metadata(contract, in_channels, out_channels), indent=2) + "\n")
