"""The network of a checkpoint as one file: TorchScript (`torch.jit.trace`) or ONNX (`torch.onnx.export`).

What is exported is `model.net` in eval mode: the full-resolution head only (deep supervision's extra
outputs exist in training mode alone). The file takes `sw_batch_size` windows of the patch size at a time
(the predictor pads the last batch, as seg does for a compiled network) and has exactly one output, checked
on the written file, whose logits must equal the network's own.
"""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from ..core.errors import SegError
from ..core.log import log

Format = Literal["torchscript", "onnx"]
SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}
TOLERANCE = 1e-4  # largest |logit difference| accepted between the written file and the network


def example_windows(in_channels: int, patch: Sequence[int], batch: int) -> torch.Tensor:
    """A fixed random batch of windows to trace and check with."""
    return torch.randn((batch, in_channels, *patch), generator=torch.Generator().manual_seed(0))


def export_network(net: torch.nn.Module, windows: torch.Tensor, fmt: Format, path: Path) -> float:
    """Write `net` (eval mode) to `path`; the largest |logit difference| of the written file on `windows`."""
    net = net.eval()
    with torch.no_grad():
        expected = net(windows)
    if not isinstance(expected, torch.Tensor):
        raise SegError(f"seg export: the network returns {type(expected).__name__} in eval mode, not one tensor")
    if fmt == "torchscript":
        got = _torchscript(net, windows, path)
    else:
        got = _onnx(net, windows, path)
    difference = float((got - expected).abs().max())
    if difference > TOLERANCE:
        raise SegError(f"seg export: the exported network {path.name} differs from the checkpoint's by "
                       f"{difference:.3g}")
    log.info(f"exported {path.name}: one output {tuple(expected.shape)}, max |logit difference| {difference:.2g}")
    return difference


def _torchscript(net: torch.nn.Module, windows: torch.Tensor, path: Path) -> torch.Tensor:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, windows, check_trace=False)
    traced.save(str(path))
    loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        out = loaded(windows)
    if not isinstance(out, torch.Tensor):
        raise SegError(f"seg export: {path.name} returns {type(out).__name__}, not one tensor")
    return out


def _onnx(net: torch.nn.Module, windows: torch.Tensor, path: Path) -> torch.Tensor:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise SegError("seg export --format onnx needs onnx and onnxruntime: pip install 'seg[export]'") from None
    with torch.no_grad(), warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        options: dict[str, Any] = {"input_names": ["windows"], "output_names": ["logits"], "opset_version": 17}
        try:  # the TorchScript-based exporter: no onnxscript needed (torch < 2.5 has no `dynamo` argument)
            torch.onnx.export(net, (windows,), str(path), dynamo=False, **options)
        except TypeError:
            torch.onnx.export(net, (windows,), str(path), **options)
    graph = onnx.load(str(path)).graph
    if len(graph.output) != 1:
        raise SegError(f"seg export: {path.name} has {len(graph.output)} outputs, not one")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"windows": windows.numpy()})[0])


def output_count(path: Path) -> int:
    """How many outputs the network file at `path` has (the graph's declared outputs, or a forward's results)."""
    if path.suffix == ".onnx":
        import onnx

        return len(onnx.load(str(path)).graph.output)
    module = torch.jit.load(str(path), map_location="cpu")
    return len(list(module.graph.outputs()))
