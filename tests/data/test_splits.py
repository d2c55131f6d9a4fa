"""Case-level splits (benchbox.data.splits), shared by every dataset reader."""

from __future__ import annotations

import pytest

from benchbox.data.splits import assign_splits
from benchbox.errors import DataError


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
