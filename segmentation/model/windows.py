"""Sliding-window forwards in batches of one fixed size, so that a compiled network sees one input shape.

MONAI's `sliding_window_inference` passes `sw_batch_size` windows per forward, and the remainder in the last
one (a 240x240x155 volume in 128^3 windows at overlap 0.5, 4 at a time: 4, 4, 4, 4, 2). A compiled network
compiles again for that smaller batch (a graph with a dynamic batch size, from then on). Padding the last
batch with zero windows and dropping their outputs keeps every forward at `sw_batch_size` windows: each
window's logits are those of the unpadded forward (the network treats the windows of a batch independently
in eval mode; `tests/model/test_compile.py` checks it).
"""

from __future__ import annotations

from typing import Callable

import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]


def forward_padded(predictor: Predictor, windows: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`predictor(windows)`, run on `batch_size` windows: fewer are padded with zero windows, whose outputs are
    dropped (more are passed as they are)."""
    count = len(windows)
    if count >= batch_size:
        return predictor(windows)
    padding = windows.new_zeros((batch_size - count, *windows.shape[1:]))
    return predictor(torch.cat([windows, padding]))[:count]


def fixed_batch(predictor: Predictor, batch_size: int) -> Predictor:
    """A predictor for `sliding_window_inference` that runs `predictor` on `batch_size` windows every time."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        return forward_padded(predictor, windows, batch_size)
    return predict
