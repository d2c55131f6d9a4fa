"""Case-level splits (benchbox.data.splits), shared by every dataset reader."""

from __future__ import annotations

import pytest

from benchbox.data.splits import assign_splits
from benchbox.errors import ConfigError, DataError


def test_assign_splits_is_case_level_and_deterministic():
    ids = [f"c{i}" for i in range(10)]
    a = assign_splits(ids, 0.2, 0.2, seed=0)
    assert a == assign_splits(list(reversed(ids)), 0.2, 0.2, seed=0)
    assert [len(a[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert sorted(c for split in a.values() for c in split) == sorted(ids)
    assert a != assign_splits(ids, 0.2, 0.2, seed=1)
    four = assign_splits(ids[:4], 0.25, 0.25)
    assert [len(four[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    assert assign_splits(ids[:3], 0.0, 0.1)["val"] == []
    fixed = assign_splits(ids, 0.2, 0.0, fixed={"test": ["c3", "c7"]})
    assert fixed["test"] == ["c3", "c7"] and len(fixed["val"]) == 2
    assert not set(fixed["train"]) & {"c3", "c7"}


def test_assign_splits_errors():
    with pytest.raises(DataError, match="too few"):
        assign_splits(["a", "b"], 0.3, 0.3)
    with pytest.raises(DataError, match="lacks"):
        assign_splits(["a", "b"], 0, 0, fixed={"test": ["zz"]})
    with pytest.raises(DataError, match="both"):
        assign_splits(["a", "b", "c"], 0, 0, fixed={"test": ["a"], "val": ["a"]})


@pytest.mark.parametrize("n, folds", [(4, 4), (10, 4), (7, 3)])
def test_folds_test_every_case_exactly_once_with_disjoint_splits(n, folds):
    ids = [f"c{i}" for i in range(n)]
    tested: list[str] = []
    for fold in range(folds):
        s = assign_splits(ids, 0.2, 0.2, seed=3, folds=folds, fold=fold)
        assert sorted(s["train"] + s["val"] + s["test"]) == sorted(ids)
        assert not (set(s["train"]) & set(s["val"]) or set(s["test"]) & set(s["train"] + s["val"]))
        # the parts differ in size by at most one; test_fraction is ignored with folds
        assert len(s["test"]) in (n // folds, -(-n // folds))
        assert len(s["val"]) == max(1, round(n * 0.2))
        tested += s["test"]
    assert sorted(tested) == sorted(ids)
    # the same fold is the same split in every run; another split seed deals other folds
    assert assign_splits(ids, 0.2, 0.2, seed=3, folds=folds, fold=0) == assign_splits(
        list(reversed(ids)), 0.2, 0.2, seed=3, folds=folds, fold=0
    )


def test_brats_like_four_cases_four_folds_train_two_validate_one_test_one():
    ids = ["p1", "p2", "p3", "p4"]
    for fold in range(4):
        s = assign_splits(ids, 0.25, 0.25, folds=4, fold=fold)
        assert [len(s[k]) for k in ("train", "val", "test")] == [2, 1, 1]


def test_fold_errors():
    ids = ["a", "b", "c"]
    with pytest.raises(ConfigError, match="at least 2 folds"):
        assign_splits(ids, 0, 0, folds=1)
    with pytest.raises(ConfigError, match=r"fold=3 is out of range for folds=3 \(0\.\.2\)"):
        assign_splits(ids, 0, 0, folds=3, fold=3)
    with pytest.raises(DataError, match="3 case\\(s\\) cannot be cut into 4 folds"):
        assign_splits(ids, 0, 0, folds=4)
    with pytest.raises(ConfigError, match="fixed test cases"):
        assign_splits(ids, 0, 0, fixed={"test": ["a"]}, folds=2)
    with pytest.raises(DataError, match="too few"):
        assign_splits(ids, 0.5, 0, folds=3)
