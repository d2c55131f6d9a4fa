"""Work shared by the metrics of one case while :func:`share_computations` is active.

Several metrics of a case need the same intermediate result (the surface distances of
a mask pair for HD, HD95, ASSD and NSD; the SSIM pyramid for SSIM and MS-SSIM; the
Sobel terms for Qabf and Nabf). The scoring suite calls every metric of a case inside
``share_computations()``, and each intermediate is computed once there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["T", "memo", "share_computations"]

T = TypeVar("T")

_cache: ContextVar[list[tuple[str, tuple[Any, ...], Any, Any]] | None] = ContextVar(
    "benchbox_shared_metric_work", default=None
)


@contextmanager
def share_computations() -> Iterator[None]:
    """Within this block, metrics of the same inputs share their common work.

    Calls are matched by the identity of the input objects (and a hashable key such as
    the spacing); the cache holds references to the inputs, so an id cannot be reused
    while it lives. Outside the block nothing is cached.
    """
    token = _cache.set([])
    try:
        yield
    finally:
        _cache.reset(token)


def memo(kind: str, inputs: tuple[Any, ...], compute: Callable[[], T], key: Any = None) -> T:
    """``compute()``, or its result for the same ``kind``, input objects and ``key``."""
    cache = _cache.get()
    if cache is None:
        return compute()
    for kind_, inputs_, key_, result in cache:
        if (
            kind_ == kind
            and key_ == key
            and len(inputs_) == len(inputs)
            and all(x is y for x, y in zip(inputs_, inputs, strict=True))
        ):
            return result
    result = compute()
    cache.append((kind, inputs, key, result))
    return result
