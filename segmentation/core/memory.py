"""Memory: freed patch buffers kept for reuse, and the budget of `cache: gpu` (volumes beside the training step).

Reuse: a 4 x 128³ float32 patch is 32 MiB. glibc hands an allocation that large straight from the kernel
(mmap) and gives it back when freed, so every new patch first faults in ~8,000 fresh zeroed pages:
half the time of cutting a BraTS patch from the store (`BENCHMARKS.md`). Raising glibc's mmap and
trim thresholds makes freed patches go back to the heap and the next patch reuse them. The cost: the
process keeps up to `TRIM_THRESHOLD` of freed memory instead of returning it at once.

Budget: `cache: gpu` holds every training volume on the accelerator, beside what training itself takes
there: the parameters, the optimizer's state (Adam, AdamW: two fp32 copies of the parameters; SGD with
momentum: one) and the peak of one training step (activations, gradients, the convolution workspace),
measured once on CUDA (`measure_step_peak`). `GpuCacheBudget.refuse_if_short` compares their sum with the
memory free before any of it is there, and refuses with the numbers when it does not fit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .errors import SegError

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 256 * 2**20  # allocations above this (whole volumes, logits) still come from and go back to the kernel
TRIM_THRESHOLD = 512 * 2**20


def reuse_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to `MMAP_THRESHOLD` for reuse; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # macOS, musl without mallopt: patches are cut as before, only slower
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def reuse_freed_memory_in_worker(_worker_id: Any) -> None:
    """`reuse_freed_memory` as a DataLoader `worker_init_fn` (spawned workers do not inherit the setting)."""
    reuse_freed_memory()


GiB = 2**30
USABLE_FRACTION = 0.9  # of the free memory: allocator fragmentation, validation's sliding window, the CUDA context
OPTIMIZER_COPIES = {"adam": 2, "adamw": 2, "sgd": 1}  # fp32 copies of the parameters in the optimizer's state


def optimizer_copies(name: Optional[str]) -> int:
    """Copies of the parameters the optimizer `name` keeps (Adam, AdamW: 2 moments; SGD with momentum: 1;
    an unknown one: 2, the larger)."""
    return OPTIMIZER_COPIES.get(str(name).lower(), 2)


@dataclass(frozen=True)
class GpuCacheBudget:
    """What `cache: gpu` puts in one device's memory, in bytes, and what that memory has free.

    Args:
        device: the device's name (for the message).
        free: bytes free on it before the volumes and the model are there.
        volumes: bytes of the training volumes one rank holds (all of them: each epoch deals a new permutation of
            every volume to the ranks, so every rank draws every volume).
        volume_count: how many training volumes that is.
        ranks: ranks that hold their copy of every training volume in this memory (DDP processes on the CPU
            share its RAM; on CUDA each rank has its own device: 1).
        parameters: bytes of the model's parameters.
        copies: fp32 copies of the parameters in the optimizer's state (`optimizer_copies`).
        step_peak: bytes one training step allocates beyond the parameters (activations, gradients,
            workspace), measured by `measure_step_peak`; 0 where not measured (the CPU).
    """

    device: str
    free: int
    volumes: int
    volume_count: int
    ranks: int = 1
    parameters: int = 0
    copies: int = 2
    step_peak: int = 0

    @property
    def training(self) -> int:
        """Bytes the training itself takes: parameters, optimizer state and one step's peak."""
        return self.parameters * (1 + self.copies) + self.step_peak

    @property
    def needed(self) -> int:
        """Bytes in all: each rank's volumes and training in this memory."""
        return self.ranks * (self.volumes + self.training)

    @property
    def usable(self) -> int:
        """The part of the free memory that may be used (`USABLE_FRACTION`)."""
        return int(USABLE_FRACTION * self.free)

    def parts(self) -> str:
        """The sizes in GiB, in words."""
        step = f"one training step {self.step_peak / GiB:,.2f} GiB (measured)" if self.step_peak else \
            "one training step (not measured: only on CUDA)"
        who = f"each of the {self.ranks} ranks sharing {self.device}" if self.ranks > 1 else "every rank"
        return (f"{who} holds all {self.volume_count} training volumes ({self.volumes / GiB:,.2f} GiB) beside its "
                f"parameters {self.parameters / GiB:,.2f} GiB, optimizer state "
                f"{self.parameters * self.copies / GiB:,.2f} GiB ({self.copies} copies) and {step}")

    def refuse_if_short(self) -> None:
        """SegError (one line: the sizes, the free memory, what to do) when `needed` exceeds `usable`."""
        if self.needed <= self.usable:
            return
        advice = "use --data.cache store (patches read from disk by memory map) or --data.cache memory"
        if self.ranks * (self.volumes + self.parameters * (1 + self.copies)) <= self.usable:  # the step makes it short
            advice += ", or a smaller --data.batch_size or --data.patch_size (one step's activations)"
        raise SegError(f"--data.cache gpu: {self.parts()}: {self.needed / GiB:,.2f} GiB in all, but {self.device} "
                       f"has {self.free / GiB:,.2f} GiB free ({USABLE_FRACTION:.0%} of it may be used: "
                       f"{self.usable / GiB:,.2f} GiB); {advice}")


def parameter_bytes(module: Optional[torch.nn.Module]) -> int:
    """Bytes of `module`'s parameters (0 without one)."""
    return sum(p.numel() * p.element_size() for p in module.parameters()) if module is not None else 0


def measure_step_peak(module: torch.nn.Module, batch_shape: tuple[int, ...], device: torch.device,
                      autocast: Optional[torch.dtype] = None) -> int:
    """Bytes one forward and backward pass of `module` on a batch of `batch_shape` allocates on the CUDA `device`
    beyond the parameters (the batch, activations, gradients, workspace): `torch.cuda.max_memory_allocated`'s
    peak above what was allocated before, under autocast to `autocast` where given.

    `module` is left as it was: on its device, its buffers (normalisation statistics), gradients and the random
    streams restored (the measurement changes nothing a run computes).
    """
    home = next(module.parameters()).device
    buffers = [b.detach().clone() for b in module.buffers()]
    grads = [p.grad for p in module.parameters()]
    was_training = module.training
    module.zero_grad(set_to_none=True)
    module.to(device).train()
    try:
        with torch.random.fork_rng(devices=[device]):
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            batch = torch.zeros(batch_shape, device=device)
            with torch.autocast("cuda", dtype=autocast or torch.float32, enabled=autocast is not None):
                out = module(batch)
            outputs = out if isinstance(out, (list, tuple)) else [out]
            sum(o.float().sum() for o in outputs).backward()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - before
            del batch, out, outputs
    finally:
        module.to(home).train(was_training)
        for p, grad in zip(module.parameters(), grads):
            p.grad = grad
        with torch.no_grad():
            for b, saved in zip(module.buffers(), buffers):
                b.copy_(saved)
        torch.cuda.empty_cache()
    return int(peak)
