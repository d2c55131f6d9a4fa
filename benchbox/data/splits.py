"""Case-level splits, computed once for every dataset reader.

A split is chosen by case (never by slice), with a seed of its own (``split_seed``,
independent of the training seed), so every run of a leaderboard sees the same test
cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from benchbox.errors import ConfigError, DataError

__all__ = ["assign_splits"]


def assign_splits(
    case_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    fixed: Mapping[str, Sequence[str]] | None = None,
    folds: int = 0,
    fold: int = 0,
) -> dict[str, list[str]]:
    """A deterministic case-level split: no case has slices in two splits.

    Cases named in ``fixed`` keep their split; the others are shuffled with ``seed``
    (independent of the training seed, so every run of a leaderboard sees the same test
    cases) and cut into ``test_fraction`` and ``val_fraction`` of all cases (at least
    one each when the fraction is positive, rounded), the rest being ``train``.

    With ``folds`` >= 2 (k-fold cross-validation by case), the shuffled cases are cut into
    ``folds`` parts of near-equal size and part ``fold`` is the test split, whatever
    ``test_fraction`` says; validation cases are then taken from the other parts as above.
    Over ``fold = 0 .. folds-1`` every case is tested exactly once.

    Raises:
        DataError: unknown or duplicated cases in ``fixed``, or too few cases for a
            non-empty training split (or for the folds).
        ConfigError: ``folds`` with a fixed test list, ``folds`` = 1 or ``fold`` out of range.
    """
    fixed = {k: list(v) for k, v in (fixed or {}).items() if v}
    known = set(case_ids)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    seen: dict[str, str] = {}
    for split, ids in fixed.items():
        if split not in splits:
            raise ConfigError(f"unknown split {split!r} in the split lists (train, val, test)")
        for cid in ids:
            if cid not in known:
                raise DataError(f"split {split!r} names case {cid!r}, which the dataset lacks")
            if cid in seen:
                raise DataError(f"case {cid!r} is listed in both {seen[cid]!r} and {split!r}")
            seen[cid] = split
            splits[split].append(cid)
    rest = sorted(c for c in case_ids if c not in seen)
    order = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    n = len(case_ids)
    if folds:
        order = _hold_out_fold(order, folds, fold, splits, fixed)
        fixed["test"] = splits["test"]

    def quota(split: str, fraction: float) -> int:
        if split in fixed or fraction <= 0:
            return 0
        return max(1, round(n * fraction)) - len(splits[split])

    n_test = max(quota("test", test_fraction), 0)
    n_val = max(quota("val", val_fraction), 0)
    if "train" not in fixed and len(order) - n_test - n_val < 1:
        raise DataError(
            f"{n} case(s) are too few for test_fraction={test_fraction} and "
            f"val_fraction={val_fraction}: no case would be left for training (lower them "
            "with --data-opt)"
        )
    splits["test"] += order[:n_test]
    splits["val"] += order[n_test : n_test + n_val]
    splits["train"] += order[n_test + n_val :] if "train" not in fixed else []
    return {k: sorted(v) for k, v in splits.items()}


def _hold_out_fold(
    order: list[str],
    folds: int,
    fold: int,
    splits: dict[str, list[str]],
    fixed: Mapping[str, Sequence[str]],
) -> list[str]:
    """Put part ``fold`` of ``folds`` of the shuffled ``order`` into the test split and
    return the other cases, in order."""
    if "test" in fixed:
        raise ConfigError(
            "folds cannot be combined with fixed test cases (a [split] test list or labelsTs)"
        )
    if folds < 2:
        raise ConfigError(f"folds={folds}: cross-validation needs at least 2 folds (0: off)")
    if not 0 <= fold < folds:
        raise ConfigError(f"fold={fold} is out of range for folds={folds} (0..{folds - 1})")
    if len(order) < folds:
        raise DataError(f"{len(order)} case(s) cannot be cut into {folds} folds")
    parts = np.array_split(np.arange(len(order)), folds)
    held = set(parts[fold].tolist())
    splits["test"] += [order[i] for i in sorted(held)]
    return [c for i, c in enumerate(order) if i not in held]
