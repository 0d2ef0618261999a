"""Standalone predictor written beside an exported model as `predict.py`: needs numpy, nibabel and torch or onnxruntime.

It follows `contract.json` (written by `seg export`) step by step, as `seg predict` does: load the
channels, reorient to RAS, resample to the target spacing (trilinear, border padding, MONAI's
`Spacing` grid), normalise the intensities, run the network over Gaussian-blended sliding windows
(MONAI's window placement and importance map), average models and mirror TTA as probabilities,
resample the probabilities back to the input's grid, discretise there, keep the largest 6-connected
component of each `postprocessing` step's label values (a cross-validation's decision, in order) and
write the label values with the input file's header. It never imports `segmentation`, MONAI or SciPy;
`standalone_components.py` (copied beside it) keeps the largest components.

    python predict.py IMAGE [IMAGE ...] --out LABELS.nii.gz   # several images: one per channel, in order
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
try:  # inside seg's package (its tests); beside predict.py in an exported folder, copied with it
    from .standalone_components import postprocess
except ImportError:
    sys.path.insert(0, str(HERE))
    from standalone_components import postprocess  # type: ignore[no-redef]
AFFINE_TOL = 1e-3  # MONAI's tolerance for "the affine is unchanged: no resampling"


def load_channels(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(C, X, Y, Z) float32 voxels and the first file's affine (a 4D file: its channels, last axis)."""
    arrays, affine = [], None
    for path in paths:
        image: Any = nib.load(path)
        data = np.asanyarray(image.dataobj).astype(np.float32)
        arrays.extend([data] if data.ndim == 3 else list(np.moveaxis(data, -1, 0)))
        affine = image.affine if affine is None else affine
    return np.stack(arrays), np.asarray(affine, dtype=np.float64)


def to_orientation(data: np.ndarray, affine: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`data` reoriented to `axcodes`; the new affine and the orientation transform (to undo it)."""
    transform = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt(axcodes))
    oriented = np.stack([nib.orientations.apply_orientation(channel, transform) for channel in data])
    return oriented, affine @ nib.orientations.inv_ornt_aff(transform, data.shape[1:]), transform


def from_orientation(data: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Undo `to_orientation` on (C, X, Y, Z) `data`."""
    back = nib.orientations.ornt_transform(transform, np.column_stack([np.arange(3), np.ones(3)]))
    return np.stack([nib.orientations.apply_orientation(channel, back) for channel in data])


def spacing_grid(affine: np.ndarray, shape: tuple, spacing: list[float]) -> tuple[np.ndarray, tuple]:
    """MONAI `Spacing`'s output affine and shape (rotation kept, zooms replaced, corner-aligned origin)."""
    rzs = affine[:3, :3]
    zs = np.linalg.cholesky(rzs.T @ rzs).T
    old = np.sqrt(np.sum(rzs ** 2, axis=0))
    target = np.array([o if abs(o - s) <= AFFINE_TOL else s for o, s in zip(old, spacing)], dtype=float)
    new = np.eye(4)
    new[:3, :3] = rzs @ np.linalg.inv(zs) @ np.diag(np.sign(np.diag(zs)) * np.abs(target))
    corners = np.concatenate([np.asarray(np.meshgrid(*[(0.0, d - 1.0) for d in shape], indexing="ij")).reshape(3, -1),
                              np.ones((1, 8))])
    out = np.linalg.solve(new, affine) @ corners
    distances = out[:-1].copy()
    out_shape = tuple(int(v) for v in np.round(np.ptp(out[:-1] / out[-1], axis=1) + 1.0))
    world = affine @ corners
    offset = None
    for i in range(corners.shape[1]):
        if np.allclose(np.min(distances - distances[:, i:i + 1], 1), 0.0, rtol=AFFINE_TOL):
            offset = world[:-1, i]
            break
    if offset is None:
        offset = rzs @ (np.array(shape) / 2.0) + affine[:3, 3] - new[:3, :3] @ (np.array(out_shape) / 2.0)
    new[:3, 3] = offset
    return new, out_shape


def resample(data: np.ndarray, source: np.ndarray, target: np.ndarray, shape: tuple) -> np.ndarray:
    """(C, ...) `data` on the grid of affine `source` resampled trilinearly onto (`target`, `shape`), border padding
    (MONAI `SpatialResample`: the voxel centres of the output mapped into the input's voxel indices)."""
    if data.shape[1:] == tuple(shape) and np.allclose(source, target, atol=AFFINE_TOL):
        return data
    xform = np.linalg.solve(source, target)
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")).reshape(3, -1)
    coords = xform[:3, :3] @ index + xform[:3, 3:]
    lows, weights = [], []
    for axis in range(3):
        c = np.clip(coords[axis], 0, data.shape[axis + 1] - 1)
        low = np.minimum(np.floor(c).astype(np.int64), max(data.shape[axis + 1] - 2, 0))
        lows.append(low)
        weights.append((c - low).astype(np.float32))
    out = np.zeros((data.shape[0], coords.shape[1]), dtype=np.float32)
    for corner in itertools.product((0, 1), repeat=3):
        idx = [np.minimum(low + bit, data.shape[axis + 1] - 1) for axis, (low, bit) in enumerate(zip(lows, corner))]
        w = np.ones(coords.shape[1], dtype=np.float32)
        for axis, bit in enumerate(corner):
            w *= weights[axis] if bit else 1.0 - weights[axis]
        out += data[:, idx[0], idx[1], idx[2]] * w
    return out.reshape(data.shape[0], *shape)


def normalise(data: np.ndarray, intensity: dict) -> np.ndarray:
    """The contract's intensity normalisation: a clipped window scaled to [low, high], or a nonzero z-score."""
    if intensity["kind"] == "window":
        low, high = intensity["window"]
        b_low, b_high = intensity["range"]
        scaled = (data - low) / (high - low) * (b_high - b_low) + b_low
        return np.clip(scaled, b_low, b_high).astype(np.float32)
    out = data.copy()
    for channel in out:  # z-score per channel over the nonzero voxels (MONAI NormalizeIntensity, population std)
        mask = channel != 0 if intensity["nonzero"] else np.ones(channel.shape, dtype=bool)
        if mask.any():
            values = channel[mask].astype(np.float64)
            std = values.std()
            channel[mask] = ((values - values.mean()) / (std if std != 0 else 1.0)).astype(np.float32)
    return out


def gaussian(patch: list[int], sigma_scale: float) -> np.ndarray:
    """MONAI's Gaussian importance map of a window (sigma = sigma_scale * size; floored at its minimum, >= 1e-3)."""
    weights = np.ones((), dtype=np.float32)
    for n in patch:
        x = np.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=np.float32)
        weights = np.multiply.outer(weights, np.exp(x ** 2 / np.float32(-2 * (n * sigma_scale) ** 2)))
    return np.maximum(weights, max(float(weights.min()), 1e-3)).astype(np.float32)


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """MONAI's window starts along one axis (interval int(patch * (1 - overlap)), the last window flush)."""
    interval = patch if patch == size else max(int(patch * (1 - overlap)), 1)
    count = next(d for d in range(math.ceil(size / interval)) if d * interval + patch >= size) + 1
    return [i * interval - max(i * interval + patch - size, 0) for i in range(count)]


def sliding_window(image: np.ndarray, forward, window: dict) -> np.ndarray:
    """Gaussian-blended logits of a (C, X, Y, Z) image, windows of `patch_size` (zero-padded when smaller)."""
    roi = [int(r) for r in window["patch_size"]]
    pads = [(max(r - s, 0) // 2, max(r - s, 0) - max(r - s, 0) // 2) for r, s in zip(roi, image.shape[1:])]
    padded = np.pad(image, [(0, 0), *pads])
    size = padded.shape[1:]
    patch = [min(r, s) for r, s in zip(roi, size)]
    weight = gaussian(patch, window["sigma_scale"])
    starts = list(itertools.product(*[window_starts(s, p, window["overlap"]) for s, p in zip(size, patch)]))
    total, count = None, np.zeros(size, dtype=np.float32)
    for first in range(0, len(starts), window["batch_size"]):
        group = starts[first:first + window["batch_size"]]
        views = [tuple(slice(a, a + p) for a, p in zip(s, patch)) for s in group]
        batch = np.stack([padded[(slice(None),) + v] for v in views])
        if len(batch) < window["batch_size"]:  # the last batch padded with zero windows: one input shape
            missing = np.zeros((window["batch_size"] - len(batch),) + batch.shape[1:], batch.dtype)
            batch = np.concatenate([batch, missing])
        logits = forward(batch)[:len(views)]
        if total is None:
            total = np.zeros((logits.shape[1], *size), dtype=np.float32)
        for view, out in zip(views, logits):
            total[(slice(None),) + view] += out * weight
            count[view] += weight
    assert total is not None
    total /= count
    return total[(slice(None),) + tuple(slice(a, a + s) for (a, _), s in zip(pads, image.shape[1:]))]


def load_network(path: Path):
    """A forward function (numpy windows -> numpy logits) of a TorchScript (.ts) or ONNX (.onnx) network."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda windows: session.run(None, {name: windows.astype(np.float32)})[0]
    import torch

    network = torch.jit.load(str(path), map_location="cpu").eval()

    def forward(windows: np.ndarray) -> np.ndarray:
        # the profiling executor's optimisation runs cost seconds per fresh process (1.9 s, 1.6 s for the first two
        # forwards of the demo's UNet on a CPU): a predictor of a few cases runs the graph as it is
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return network(torch.from_numpy(np.ascontiguousarray(windows))).numpy()
    return forward


def probabilities(logits: np.ndarray, output: dict, axis: int = 0) -> np.ndarray:
    """Softmax over the classes (`axis`), or a sigmoid per region."""
    if output["activation"] == "sigmoid":
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)


def mirrored_sets(axes: list[int]) -> list[tuple[int, ...]]:
    """Every combination of the TTA axes, the unflipped one first."""
    return [combo for k in range(len(axes) + 1) for combo in itertools.combinations(sorted(axes), k)]


def mirrored(forward, flips: list[tuple[int, ...]], output: dict):
    """A window predictor for mirror TTA, as seg's: the mean over `flips` of the probabilities of the flipped
    windows, flipped back (the windows are then blended as probabilities, not logits)."""

    def predict(windows: np.ndarray) -> np.ndarray:
        total = None
        for flip in flips:
            dims = tuple(a + 2 for a in flip)
            out = forward(np.ascontiguousarray(np.flip(windows, dims))) if flip else forward(windows)
            probs = probabilities(out, output, axis=1)
            probs = np.flip(probs, dims) if flip else probs
            total = probs if total is None else total + probs
        assert total is not None
        return total / len(flips)
    return predict


def predict_probabilities(image: np.ndarray, contract: dict, folder: Path) -> np.ndarray:
    """The mean probabilities of every network (each under mirror TTA, if any) on the preprocessed image."""
    mean = None
    flips = mirrored_sets([int(a) for a in contract["tta_axes"]]) if contract["tta_axes"] else []
    for name in contract["networks"]:
        forward = load_network(folder / name)
        if flips:
            probs = sliding_window(image, mirrored(forward, flips, contract["output"]), contract["window"])
        else:
            probs = probabilities(sliding_window(image, forward, contract["window"]), contract["output"])
        mean = probs if mean is None else mean + probs
    assert mean is not None
    return mean / len(contract["networks"])


def to_labels(probs: np.ndarray, output: dict) -> np.ndarray:
    """The label map in the dataset's values: argmax class values, or regions written in the contract's order."""
    if output["activation"] == "softmax":
        return np.asarray(output["label_values"])[probs.argmax(axis=0)]
    labels = np.zeros(probs.shape[1:], dtype=np.int64)
    for region in output["regions"]:  # outer regions first: an inner one overwrites them
        labels[probs[region["channel"]] > 0.5] = region["value"]
    return labels


def predict(paths: list[str], contract: dict, folder: Path = HERE) -> tuple[np.ndarray, Any]:
    """The label map of the image (one file per channel) on the first file's grid, and that file."""
    pre = contract["preprocessing"]
    data, affine = load_channels(paths)
    if len(data) != len(pre["channels"]):
        raise SystemExit(f"predict.py: error: {len(data)} channels given, the model takes {pre['channels']}")
    oriented, oriented_affine, transform = to_orientation(data, affine, pre["orientation"])
    grid_affine, grid_shape = oriented_affine, oriented.shape[1:]
    if pre["spacing"]:
        grid_affine, grid_shape = spacing_grid(oriented_affine, oriented.shape[1:], pre["spacing"])
    image = normalise(resample(oriented, oriented_affine, grid_affine, grid_shape), pre["intensity"])
    probs = predict_probabilities(image, contract, folder)
    back = from_orientation(resample(probs, grid_affine, oriented_affine, oriented.shape[1:]), transform)
    labels = postprocess(to_labels(back, contract["output"]), contract.get("postprocessing") or [])
    return labels, nib.load(paths[0])


def save(labels: np.ndarray, reference: Any, target: Path) -> None:
    """Write the label map with the reference file's header (shape, affine, orientation)."""
    data = labels.astype(np.uint8 if labels.max() < 256 else np.int16)
    header = reference.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header["scl_slope"], header["scl_inter"] = 1, 0
    target.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, reference.affine, header), str(target))


def main(argv: list[str] | None = None) -> int:
    """Predict the label map of one image (one file per channel) and write it."""
    parser = argparse.ArgumentParser(prog="predict.py", description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", help="the image: one NIfTI file per channel, in the contract's order")
    parser.add_argument("--out", required=True, help="the label map to write (.nii.gz)")
    parser.add_argument("--contract", default=str(HERE / "contract.json"))
    args = parser.parse_args(argv)
    contract_path = Path(args.contract)
    contract = json.loads(contract_path.read_text())
    labels, reference = predict(args.images, contract, contract_path.parent)
    save(labels, reference, Path(args.out))
    logging.basicConfig(format="%(message)s", level=logging.INFO)
    logging.getLogger("predict").info(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
