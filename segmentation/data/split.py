"""The deterministic train/validation split (and cross-validation folds) of a dataset's case ids."""

from __future__ import annotations

import random
from typing import Optional, Sequence

from ..core.errors import SegError


def split_cases(
    case_ids: Sequence[str], val_fraction: float, seed: int, fold: Optional[int] = None, num_folds: int = 5
) -> tuple[list[str], list[str]]:
    """A deterministic train/val split of `case_ids`: the same ids and settings give the same split.

    With `fold`, the shuffled ids are dealt into `num_folds` folds and fold `fold` is
    the validation set (5-fold cross-validation: folds 0..4 cover every case once).
    """
    ids = sorted(case_ids)
    random.Random(seed).shuffle(ids)
    if fold is not None:
        if not 0 <= fold < num_folds:
            raise SegError(f"--data.fold {fold} is not one of 0..{num_folds - 1} (--data.num_folds {num_folds})")
        val = set(ids[fold::num_folds])
        return sorted(set(ids) - val), sorted(val)
    n_val = max(1, round(len(ids) * val_fraction)) if len(ids) > 1 else 0
    return sorted(ids[n_val:]), sorted(ids[:n_val])
