"""Largest connected components for the standalone predictor, copied beside it (`predict.py`): numpy only.

The same decision as seg's `model.postprocessing` (scipy's 6-connected labelling), for a folder that has
neither seg nor SciPy.
"""

from __future__ import annotations

import numpy as np


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected (face neighbours) component of a boolean mask, as `scipy.ndimage.label` finds it;
    of equal largest components the first in scan order. Each voxel starts with its own flat index; repeatedly
    every mask voxel takes the least over itself and its face neighbours in the mask (and the label of the voxel
    its label names: a jump along the chain), until nothing changes: a component's voxels then hold its first
    voxel's index."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    outside = mask.size  # larger than any index
    ids = np.where(mask, np.arange(mask.size).reshape(mask.shape), outside)
    while True:
        new = ids.copy()
        for axis in range(mask.ndim):
            low = tuple(slice(0, -1) if a == axis else slice(None) for a in range(mask.ndim))
            high = tuple(slice(1, None) if a == axis else slice(None) for a in range(mask.ndim))
            np.minimum(new[low], ids[high], out=new[low])
            np.minimum(new[high], ids[low], out=new[high])
        new[~mask] = outside
        inside = new[mask]
        new[mask] = np.minimum(inside, new.reshape(-1)[inside])  # a voxel's label's own label is in its component
        if np.array_equal(new, ids):
            break
        ids = new
    components, sizes = np.unique(ids[mask], return_counts=True)
    return ids == components[int(np.argmax(sizes))]  # (ascending first indices: the first of equal sizes)


def keep_largest(labels: np.ndarray, values: list[int]) -> np.ndarray:
    """A copy of `labels` whose voxels of `values` outside their largest component are background 0."""
    mask = np.isin(labels, list(values))
    result = labels.copy()
    result[mask & ~largest_component(mask)] = 0
    return result


def postprocess(labels: np.ndarray, steps: list[dict]) -> np.ndarray:
    """The contract's `postprocessing` steps in order (seg's `apply_postprocessing` of the decision exported)."""
    for step in steps:
        labels = keep_largest(labels, [int(v) for v in step["values"]])
    return labels
