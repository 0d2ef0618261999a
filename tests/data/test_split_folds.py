"""Cross-validation folds: the test split is carved before the folds and is the same in every fold."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from segmentation.data.split import dataset_split


def settings(fold, num_folds=5, test_fraction=0.2, seed=0):
    return SimpleNamespace(test_fraction=test_fraction, seed=seed, val_fraction=0.2, fold=fold, num_folds=num_folds)


@pytest.mark.unit
@pytest.mark.parametrize("cases,num_folds,seed", [(23, 5, 0), (10, 3, 7), (6, 2, 1)])
def test_every_fold_holds_the_same_test_cases_out_and_the_folds_validate_every_other_case_once(cases, num_folds,
                                                                                               seed):
    ids = [f"case_{i:03d}" for i in range(cases)]
    splits = [dataset_split(ids, settings(fold, num_folds, seed=seed)) for fold in range(num_folds)]
    tests = {tuple(split.test) for split in splits}
    assert len(tests) == 1 and len(next(iter(tests))) == round(cases * 0.2)
    test = set(splits[0].test)
    assert test == set(dataset_split(ids, settings(None, seed=seed)).test)  # the same as without folds
    validated = [case for split in splits for case in split.val]
    assert sorted(validated) == sorted(set(ids) - test)  # each non-test case validated by exactly one fold
    for split in splits:
        assert not test & (set(split.train) | set(split.val))
        assert set(split.train) | set(split.val) == set(ids) - test and not set(split.train) & set(split.val)


@pytest.mark.unit
def test_a_folds_split_does_not_depend_on_the_case_order():
    ids = [f"c{i}" for i in range(12)]
    assert dataset_split(ids, settings(1, 4)) == dataset_split(list(reversed(ids)), settings(1, 4))
