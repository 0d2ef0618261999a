"""Mirror test-time augmentation: class probabilities averaged over flips of the spatial axes, inside each window.

`mirrored` wraps the network's forward for MONAI's `sliding_window_inference`: every batch of windows is run
once, in one larger batch holding each flipped copy, and the outputs are flipped back, turned into probabilities
(softmax, or sigmoid for regions) and averaged. A case therefore costs one sliding-window pass (one set of
windows, one blending), not one per flip: only the network sees `len(flips)` times the windows.

Averaging inside the windows equals averaging the flipped whole-volume predictions wherever the window grid is
mirror-symmetric (the blending is linear, and the Gaussian weights are symmetric): `tests/model/test_tta.py`
checks it against the explicit flipped predictions. With TTA the windows are blended as probabilities, not
logits (an average of probabilities needs them per window).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..core.errors import SegError

Predictor = Callable[[torch.Tensor], torch.Tensor]
SPATIAL_AXES = (0, 1, 2)  # the axes a user names (`--tta_axes 0,1,2`); tensor dimensions 2, 3, 4 of (B, C, X, Y, Z)


def flip_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every combination of flips of the spatial `axes` as tensor dimensions, the identity first: 2^len(axes)."""
    unknown = sorted(set(axes) - set(SPATIAL_AXES))
    if unknown or not axes:
        raise SegError(f"--tta_axes {','.join(map(str, axes)) or '(none)'}: give spatial axes among 0, 1, 2 "
                       f"(e.g. --tta_axes 0,1)")
    dims = [axis + 2 for axis in sorted(set(axes))]
    return [tuple(dim for bit, dim in enumerate(dims) if mask >> bit & 1) for mask in range(2 ** len(dims))]


def parse_axes(text: str) -> list[int]:
    """`"0,1"` -> [0, 1]; SegError naming the option for anything else."""
    try:
        return [int(part) for part in str(text).replace(" ", "").split(",") if part != ""]
    except ValueError:
        raise SegError(f"--tta_axes {text}: give spatial axes among 0, 1, 2 separated by commas "
                       f"(e.g. --tta_axes 0,1)") from None


def flipped(tensor: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """`tensor` flipped along `dims` (itself for no dims)."""
    return tensor.flip(dims) if dims else tensor


def mirrored(forward: Predictor, flips: Sequence[tuple[int, ...]],
             to_probabilities: Callable[[torch.Tensor], torch.Tensor]) -> Predictor:
    """A window predictor: the mean over `flips` of the probabilities of the flipped windows, flipped back, all
    flips of a window batch in one forward."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        count = len(windows)
        outputs = forward(torch.cat([flipped(windows, dims) for dims in flips]))
        total = torch.zeros_like(outputs[:count], dtype=torch.float32)
        for index, dims in enumerate(flips):
            total += flipped(to_probabilities(outputs[index * count:(index + 1) * count].float()), dims)
        return total / len(flips)
    return predict
