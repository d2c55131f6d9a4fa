"""The dataset contract (``register_datasets`` in :mod:`benchbox.hookspecs`, the samples
as :mod:`benchbox.data.base` describes them)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from benchbox import Entry, errors
from benchbox.testing.contracts._common import build, calling, expect_tensor, shape
from benchbox.testing.result import ContractError

__all__ = ["SAMPLES_PER_SPLIT", "check_dataset"]

#: Samples read from each split: enough to see two case ids, few enough for real data.
SAMPLES_PER_SPLIT = 2
_SPLITS = ("train", "val", "test")


def check_dataset(entry: Entry) -> str:
    """``factory()`` (no root) builds the dataset or refuses with a one-line
    :class:`benchbox.errors.ConfigError` (then it needs data and is skipped). The dataset
    names two modalities; each of its splits is empty (``DataError``) or holds samples
    with sources ``a``, ``b`` ``float32 (1, H, W)`` in ``[0, 1]``, a ``str`` ``case_id``
    unique in the split, two positive pixel ``spacing`` values (mm) and, when labelled,
    a ``mask`` ``int64 (H, W)`` of its labels; an unknown split is a ``DataError``."""
    dataset = build(entry)
    with calling(entry, "reading the dataset's name, modalities and labels"):
        modalities = getattr(dataset, "modalities", None)
        labels = getattr(dataset, "labels", None)
        splits = tuple(getattr(dataset, "splits", _SPLITS))
    if (
        not isinstance(modalities, Sequence)
        or len(modalities) != 2
        or not all(isinstance(m, str) for m in modalities)
    ):
        raise ContractError(f"modalities={modalities!r}; expected the names of a and b")
    if labels is not None and (not isinstance(labels, Mapping) or 0 not in labels):
        raise ContractError(f"labels={labels!r}; expected {{index: name}} with 0, or None")
    read = 0
    for split in splits:
        read += _check_split(entry, dataset, split, labels)
    if not read:
        raise ContractError(f"no sample in any split ({', '.join(splits)})")
    with calling(entry, "split('no-such-split')"):
        try:
            dataset.split("no-such-split")
        except errors.DataError:
            return ""
    raise ContractError("split('no-such-split') did not raise benchbox.errors.DataError")


def _check_split(entry: Entry, dataset: Any, split: str, labels: Any) -> int:
    with calling(entry, f"split({split!r})"):
        try:
            samples = dataset.split(split)
        except errors.DataError:
            return 0  # an empty split says so this way
        n = len(samples)
    seen: set[str] = set()
    for i in range(min(n, SAMPLES_PER_SPLIT)):
        with calling(entry, f"split({split!r})[{i}]"):
            sample = samples[i]
        _check_sample(sample, f"split({split!r})[{i}]", labels)
        if sample["case_id"] in seen:
            raise ContractError(f"split({split!r}) repeats case_id {sample['case_id']!r}")
        seen.add(sample["case_id"])
    return min(n, SAMPLES_PER_SPLIT)


def _check_sample(sample: Any, what: str, labels: Any) -> None:
    if not isinstance(sample, Mapping):
        raise ContractError(f"{what} is a {type(sample).__name__}, not a dict")
    missing = [k for k in ("a", "b", "case_id", "spacing") if k not in sample]
    if missing:
        raise ContractError(f"{what} has no {', '.join(map(repr, missing))}")
    a = sample["a"]
    if not isinstance(a, torch.Tensor) or a.dim() != 3 or a.shape[0] != 1:
        got = shape(a) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ContractError(f"{what}['a'] is {got}; expected a tensor (1, H, W)")
    for key in ("a", "b"):
        expect_tensor(
            sample[key], f"{what}[{key!r}]", shape(a), dtype=torch.float32, unit_range=True
        )
    if not isinstance(sample["case_id"], str) or not sample["case_id"]:
        raise ContractError(f"{what}['case_id'] is {sample['case_id']!r}; expected a str")
    spacing = sample["spacing"]
    values = spacing.tolist() if isinstance(spacing, torch.Tensor) else spacing
    if (
        not isinstance(values, Sequence)
        or len(values) != 2
        or not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values)
    ):
        raise ContractError(f"{what}['spacing'] is {spacing!r}; expected 2 positive mm values")
    mask = sample.get("mask")
    if mask is None:
        return
    expect_tensor(mask, f"{what}['mask']", shape(a)[1:], dtype=torch.int64)
    if labels is not None and not set(mask.unique().tolist()) <= set(labels):
        raise ContractError(
            f"{what}['mask'] holds labels {sorted(set(mask.unique().tolist()) - set(labels))} "
            f"that labels={dict(labels)!r} does not name"
        )
