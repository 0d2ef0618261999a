"""`--model.compile`: training compiles one graph and evaluation one more; the last, smaller batch of sliding
windows and the previews add none, and padding that batch leaves the logits unchanged."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from monai.inferers import sliding_window_inference
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segmentation.model.module import SegmentationModule
from segmentation.model.windows import forward_padded
from segmentation.training.previews import ValidationPreviews

from ..helpers import only_run_dir, seg_in_process, tiny_fit_args

ROI = (16, 16, 16)


class CountingBackend:
    """A `torch.compile` backend that runs the traced graph as it is (no C compiler) and counts the graphs, and
    those with a symbolic (dynamic) size."""

    def __init__(self) -> None:
        self.graphs = self.dynamic = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1
        self.dynamic += any(isinstance(value, torch.SymInt) for value in example_inputs)
        return graph.forward


@pytest.fixture()
def backend(monkeypatch, fresh_compile_caches) -> CountingBackend:
    """`nn.Module.compile` (what --model.compile calls) with a counting backend, on emptied compile caches."""
    counting, original = CountingBackend(), torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kwargs: original(self, **{**kwargs, "backend": counting}))
    return counting


def tiny_module(**overrides) -> SegmentationModule:
    """A two-level UNet on 16^3 patches."""
    return SegmentationModule(roi_size=ROI, network_kwargs={"channels": [4, 8], "strides": [2], "num_res_units": 0},
                              **overrides)


@pytest.mark.unit
def test_padded_window_batches_give_the_logits_of_unpadded_ones(backend):
    torch.manual_seed(0)
    uncompiled = tiny_module(sw_batch_size=4).eval()
    torch.manual_seed(0)
    model = tiny_module(sw_batch_size=4, compile=True).eval()
    sizes: list[int] = []
    forward = model.forward
    model.forward = lambda windows: (sizes.append(len(windows)), forward(windows))[1]  # type: ignore[method-assign]
    volume = torch.randn(1, 1, 40, 40, 28)  # 3 x 3 x 2 windows: batches of 4, 4, 4, 4, 2
    with torch.inference_mode():
        padded = model.infer_volume(volume)
        plain = sliding_window_inference(volume, ROI, 4, forward, overlap=model.hparams.sw_overlap, mode="gaussian")
    assert sizes == [4] * 5  # the last batch of 2 windows went through padded to 4
    assert torch.equal(padded, plain)  # bitwise on the CPU
    unpadded: list[int] = []
    forward = uncompiled.forward
    uncompiled.forward = lambda windows: (unpadded.append(len(windows)), forward(windows))[1]  # type: ignore
    with torch.inference_mode():
        assert torch.equal(uncompiled.infer_volume(volume), plain)
    assert unpadded == [4, 4, 4, 4, 2]  # uncompiled: nothing to pad for, no windows computed in vain


@pytest.mark.unit
def test_only_a_short_batch_is_padded_and_its_padding_dropped():
    windows = torch.randn(3, 1, *ROI)
    assert forward_padded(lambda x: x * 2, windows, 3).shape == (3, 1, *ROI)
    assert forward_padded(lambda x: x * 2, windows, 2).shape == (3, 1, *ROI)
    assert torch.equal(forward_padded(lambda x: x * 2, windows[:1], 3), windows[:1] * 2)


def volume(*shape: int) -> torch.Tensor:
    """A validation volume, made outside any no-grad context (as a loader makes it)."""
    return torch.randn(1, 1, *shape)


@pytest.mark.unit
def test_training_then_validation_and_previews_compile_two_graphs(backend):
    """As `seg fit` runs them: training in train mode with gradients; validation (Lightning's fit validates under
    no_grad, not inference mode) and previews in eval mode under no_grad. The volumes give 27 and 18 windows, 4 at
    a time: last batches of 3 and 2."""
    torch.manual_seed(0)
    model = tiny_module(sw_batch_size=4, compile=True)
    batch = {"image": torch.randn(2, 1, *ROI), "label": torch.randint(0, 2, (2, 1, *ROI)).float()}
    for _ in range(2):
        model.loss(model(batch["image"]), batch["label"]).backward()
    assert backend.graphs == 1
    model.eval()
    with torch.no_grad():
        for shape in ((40, 40, 40), (40, 40, 28)):
            model.infer_volume(volume(*shape))
    # the evaluation graph (no autograd, eval mode), of 4 windows where training's has 2 patches: both static
    assert backend.graphs == 2 and backend.dynamic == 0  # was 2, the evaluation graph dynamic (3 at equal sizes)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(val_step_context=nullcontext))
    case = {"image": volume(40, 40, 40)[0], "label": torch.zeros(1, 40, 40, 40)}
    ValidationPreviews.predict_case(trainer, model, case)
    model.train()
    model.loss(model(batch["image"]), batch["label"]).backward()
    assert backend.graphs == 2


@pytest.mark.unit
def test_evaluation_under_inference_mode_compiles_one_graph(backend):
    """As `seg validate|test|predict` run: inference mode throughout; the last, smaller window batches add none."""
    model = tiny_module(sw_batch_size=4, compile=True).eval()
    with torch.inference_mode():
        for shape in ((40, 40, 40), (40, 40, 28), (20, 30, 16)):
            model.infer_volume(volume(*shape))
    assert backend.graphs == 1 and backend.dynamic == 0  # was 2, the second one dynamic


def test_a_compiled_fit_with_validation_and_previews_compiles_two_graphs(demo_root, tmp_path, backend):
    # 32^3 validation volumes in 16^3 windows at overlap 0.25: 27 windows, 2 at a time (the last batch: 1);
    # previews after epoch 2's validation (inside Lightning's loop) and at the end of the fit (outside it)
    args = tiny_fit_args(demo_root, f"--trainer.default_root_dir={tmp_path}", "--model.compile=true",
                         "--trainer.max_epochs=3", "--preview_every_n_epochs=2", "--model.sw_batch_size=2")
    assert seg_in_process(args) == 0
    assert backend.graphs == 2 and backend.dynamic == 0  # training and evaluation; was 3 (the last window batch)
    events = EventAccumulator(str(only_run_dir(tmp_path / "lightning_logs")), size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("preview/axial")) == 2  # both previews ran
