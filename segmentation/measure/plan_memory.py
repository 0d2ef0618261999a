"""The memory a training step of a candidate network takes: measured on a GPU, estimated without one.

`seg plan` sizes the patch and the batch to a memory target. nnU-Net scales a count of convolution outputs by a
constant fitted to one GPU ("proportional, not exact", nnU-Net #173). seg instead:

- on a CUDA device (`MeasuredStep`), runs real forward and backward passes of the candidate at batch 1 and 2
  (`core.memory.measure_step_peak`, under the run's autocast) and times a step: memory per sample and the fixed
  part come from the two peaks, samples/s from the timed step;
- without one (`MetaEstimate`), builds the candidate on PyTorch's meta device (nothing is allocated), runs one
  training forward pass and adds up the float32 bytes of every tensor autograd saves for the backward pass (the
  activations a step holds at its peak), per sample; the fixed part is the parameters x 16 bytes (weights,
  gradients, two Adam moments). It is an estimate: float32 throughout (mixed precision keeps many of those tensors
  in 16 bits) and without the library's workspace.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Optional

import torch
from typing_extensions import override

from ..model.networks import ARCHITECTURES

BYTES_PER_PARAMETER = 16  # float32 weights, gradients and Adam's two moments


@dataclass(frozen=True)
class Candidate:
    """One network on one patch: what a memory figure is of."""

    architecture: str
    in_channels: int
    out_channels: int
    patch_size: tuple[int, ...]
    network_kwargs: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def identity(self) -> tuple:
        """What makes two candidates the same network on the same patch (the kwargs written out)."""
        return (self.architecture, self.in_channels, self.out_channels, tuple(self.patch_size),
                json.dumps(self.network_kwargs, sort_keys=True))

    def build(self) -> torch.nn.Module:
        """The candidate network (on the current default device) in training mode."""
        entry = ARCHITECTURES[self.architecture]
        kwargs = dict(self.network_kwargs)
        if kwargs.pop("deep_supervision", False) and entry.deep_supervision is not None:
            kwargs.update(entry.deep_supervision(self.patch_size, kwargs))
        return entry.build(self.in_channels, self.out_channels, self.patch_size, **kwargs).train()


@dataclass
class StepFigures:
    """Bytes of one training step: `fixed + batch * per_sample`; samples/s where measured."""

    per_sample: float
    fixed: float
    samples_per_second: Optional[float] = None

    def bytes_for(self, batch: int) -> float:
        """The step's bytes at `batch` samples."""
        return self.fixed + batch * self.per_sample


class StepMemory(ABC):
    """What the planner asks of a memory model: each candidate's figures, measured once (the planner asks for the
    same candidate more than once)."""

    measured = False

    def __init__(self) -> None:
        self._known: dict[tuple, StepFigures] = {}

    def figures(self, candidate: Candidate) -> StepFigures:
        """Bytes per sample and fixed bytes of a training step of `candidate` (remembered per candidate)."""
        if candidate.identity not in self._known:
            self._known[candidate.identity] = self.measure(candidate)
        return self._known[candidate.identity]

    @abstractmethod
    def measure(self, candidate: Candidate) -> StepFigures:
        """The figures of `candidate`, obtained anew."""

    @abstractmethod
    def describe(self) -> str:
        """One phrase: how the figures were obtained."""


class MetaEstimate(StepMemory):
    """Saved-for-backward float32 bytes of one training forward pass on the meta device (see the module)."""

    measured = False

    @override
    def measure(self, candidate: Candidate) -> StepFigures:
        """The candidate's saved-for-backward bytes per sample and its parameters' bytes."""
        saved: dict[int, int] = {}

        def count(tensor: torch.Tensor) -> torch.Tensor:
            saved[id(tensor)] = tensor.numel() * 4  # float32 bytes, whatever the meta tensor's dtype
            return tensor

        with torch.device("meta"):
            network = candidate.build()
            batch = torch.zeros(1, candidate.in_channels, *candidate.patch_size)
            with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
                network(batch)
        parameters = sum(p.numel() for p in network.parameters())
        return StepFigures(per_sample=float(sum(saved.values())), fixed=float(parameters * BYTES_PER_PARAMETER))

    @override
    def describe(self) -> str:
        """How the figures were obtained."""
        return "estimated on the meta device (float32 activations saved for backward + 16 B per parameter)"


class MeasuredStep(StepMemory):
    """Real training steps of each candidate on a CUDA `device` (see the module)."""

    measured = True

    def __init__(self, device: torch.device, autocast: Optional[torch.dtype] = torch.bfloat16):
        super().__init__()
        self.device, self.autocast = device, autocast

    @override
    def measure(self, candidate: Candidate) -> StepFigures:
        """Peaks at batch 1 and 2 and one timed step at batch 2."""
        from ..core.memory import measure_step_peak

        network = candidate.build().to(self.device)
        shape = (candidate.in_channels, *candidate.patch_size)
        one = measure_step_peak(network, (1, *shape), self.device, self.autocast)
        started = time.perf_counter()
        two = measure_step_peak(network, (2, *shape), self.device, self.autocast)
        seconds = time.perf_counter() - started
        per_sample = max(two - one, 1)
        parameters = sum(p.numel() for p in network.parameters())
        figures = StepFigures(per_sample=float(per_sample), fixed=float(max(one - per_sample, 0)
                              + parameters * (BYTES_PER_PARAMETER - 4)), samples_per_second=2 / seconds)
        del network
        torch.cuda.empty_cache()
        return figures

    @override
    def describe(self) -> str:
        """How the figures were obtained."""
        return f"measured: real training steps on {self.device} ({self.autocast or 'float32'})"
