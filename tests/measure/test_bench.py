"""`seg bench`'s measured loops: they train the network they are given (compiled if it is), and scale float16."""

from __future__ import annotations

import pytest
import torch

from segmentation.measure.bench import WARMUP, needs_grad_scaler, network_ceiling, plain_loop_rate, training_steps
from segmentation.model.module import SegmentationModule

pytestmark = pytest.mark.unit  # no Trainer, no subprocess

STEPS = 2


class CountingBackend:
    """A `torch.compile` backend that runs the traced graph as it is (no C compiler) and counts its runs."""

    def __init__(self) -> None:
        self.graphs = self.runs = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1

        def run(*args):
            self.runs += 1
            return graph.forward(*args)
        return run


def tiny_module() -> SegmentationModule:
    return SegmentationModule(roi_size=(16, 16, 16), network_kwargs={"channels": [4, 8], "strides": [2],
                                                                     "num_res_units": 0})


def batch() -> dict:
    return {"image": torch.randn(2, 1, 16, 16, 16), "label": torch.randint(0, 2, (2, 1, 16, 16, 16)).float()}


def unchanged(batch: dict, _: int) -> dict:
    return batch


def test_the_ceiling_and_the_plain_loop_train_the_compiled_network_itself(fresh_compile_caches):
    model, backend = tiny_module(), CountingBackend()
    model.net.compile(backend=backend)  # as --model.compile does (`nn.Module.compile`, in place)
    cpu = torch.device("cpu")
    assert network_ceiling(model, batch(), cpu, "32-true", STEPS, unchanged) > 0
    assert backend.graphs >= 1 and backend.runs == (WARMUP + STEPS) * backend.graphs
    assert plain_loop_rate(model, [batch(), batch()], cpu, "32-true", STEPS, unchanged) > 0
    assert backend.runs == 2 * (WARMUP + STEPS) * backend.graphs  # (a copy would have run eager: no more runs)


@pytest.mark.parametrize("device, precision, scaled", [
    ("cuda", "16-mixed", True), ("cuda", "16", True), ("cuda", "bf16-mixed", False), ("cuda", "32-true", False),
    ("cpu", "16-mixed", False), ("cpu", "bf16-mixed", False),
])
def test_float16_on_cuda_alone_needs_a_gradient_scaler(device, precision, scaled):
    assert needs_grad_scaler(torch.device(device), precision) is scaled


@pytest.mark.gpu
def test_the_plain_loop_steps_through_a_gradient_scaler_under_float16(monkeypatch):
    stepped: list[float] = []
    original = torch.amp.GradScaler.step

    def step(self, optimizer, *args, **kwargs):
        stepped.append(self.get_scale())
        return original(self, optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "step", step)
    model, cuda = tiny_module(), torch.device("cuda")
    steps = training_steps(model.net.to(cuda), model.loss, [batch()] * 3, cuda, "16-mixed", unchanged)
    assert sum(steps) == 6 and len(stepped) == 3 and all(scale > 1 for scale in stepped)
