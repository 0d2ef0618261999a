"""The deterministic test / train / validation split (and cross-validation folds) of a dataset's case ids."""

from __future__ import annotations

import random
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DataSplit:
    """The case ids of each split, and where the test cases came from (for `seg test`'s table)."""

    train: list[str]
    val: list[str]
    test: list[str]
    test_source: str = "none"

    def as_state(self) -> dict:
        """Plain lists for a checkpoint."""
        return {
            "train": list(self.train), "val": list(self.val), "test": list(self.test), "test_source": self.test_source
        }

    @classmethod
    def from_state(cls, state: dict) -> DataSplit:
        """The split a checkpoint stored (one from before test splits has no test cases)."""
        return cls(list(state.get("train", [])), list(state.get("val", [])), list(state.get("test", [])),
                   state.get("test_source", "none"))

    def all_ids(self) -> list[str]:
        """Every case id of the split."""
        return [*self.train, *self.val, *self.test]


def stored_split(checkpoint: dict) -> DataSplit:
    """The split a checkpoint's run used: its datamodule's state, which Lightning keeps under the datamodule's
    class name (empty for a checkpoint without one)."""
    class_path = str((checkpoint.get("datamodule_hyper_parameters") or {}).get("_class_path", ""))
    state = checkpoint.get(class_path.rsplit(".", 1)[-1])
    return DataSplit.from_state(state if isinstance(state, dict) else {})


def carve_test(case_ids: Sequence[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(the rest, the test cases): `test_fraction` of the ids, drawn with `seed` before any train/val split.

    With fraction 0 the rest is every id, so the train/val split is what it was without a test split.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise SegError(f"--data.test_fraction {test_fraction} must be at least 0 and below 1")
    ids = sorted(case_ids)
    random.Random(f"seg-test-split-{seed}").shuffle(ids)
    n_test = round(len(ids) * test_fraction)
    return sorted(ids[n_test:]), sorted(ids[:n_test])


def dataset_split(case_ids: list[str], settings) -> DataSplit:
    """Test cases carved first (`test_fraction`), then train/val of the rest (`val_fraction`, or the `fold`)."""
    rest, test = carve_test(case_ids, settings.test_fraction, settings.seed)
    split = train_val_split(rest, settings)
    source = f"test_fraction {settings.test_fraction:g} (seed {settings.seed})" if test else "none"
    return DataSplit(split.train, split.val, test, source)


def train_val_split(case_ids: list[str], settings) -> DataSplit:
    """Train and validation case ids of `case_ids` (`val_fraction`, or the `fold`), no test cases."""
    train, val = split_cases(case_ids, settings.val_fraction, settings.seed, settings.fold, settings.num_folds)
    return DataSplit(train, val, [])


def test_cases_or_refusal(test_cases: list[dict], root) -> list[dict]:
    """`test_cases`, or SegError saying how to get some (cases used for training or selection are no test)."""
    if not test_cases:
        raise SegError(
            f"no test cases: this run's split ({root}) holds none, and cases used for training or for "
            f"choosing best.ckpt are no test. Train with --data.test_fraction F (carved before the train/val "
            f"split), or score the validation cases with --data.test_on val (labelled val in the table and CSV)"
        )
    return test_cases


def refuse_an_empty_split(split: DataSplit, root) -> None:
    """SegError when a fit would train on no case or validate on none (every meta.csv row `test`, a fold with no
    case, too few cases): such a run would train or choose best.ckpt on nothing and still exit 0."""
    counts = f"{len(split.train)} training, {len(split.val)} validation, {len(split.test)} test cases"
    if not split.train:
        raise SegError(f"the split of {root} leaves no case to train on ({counts}): lower --data.test_fraction or "
                       f"--data.val_fraction, or mark cases as train in the dataset's split file")
    if not split.val:
        raise SegError(f"the split of {root} leaves no case to validate on ({counts}): every fit validates (the "
                       f"plateau schedule and best.ckpt need it); use fewer --data.num_folds than cases, or a "
                       f"--data.val_fraction that holds out at least one")
