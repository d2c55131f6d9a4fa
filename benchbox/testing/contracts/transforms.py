"""The transform contract (``register_transforms`` in :mod:`benchbox.hookspecs`), for the
geometric and the intensity family.

A transform whose factory takes ``p`` (the probability to apply it, as the built-ins
do) is checked at ``p=1``, so that every sample is transformed. It is checked on a 2D
batch ``(B, 1, H, W)`` and, when ``info["dims"]`` holds 3, on a 3D batch
``(B, 1, D, H, W)`` (masks ``(B, [D,] H, W)``) too.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from benchbox import Entry
from benchbox.testing.contracts._common import build, calling, dims_of, expect_tensor, shape
from benchbox.testing.result import ContractError

__all__ = ["check_transform"]

_FAMILIES = ("geometric", "intensity")
#: Labels of the test mask: a gap (no 2) that must survive any transform.
_LABELS = {0, 1, 3}
_KEYS = ("a", "b", "mask")


def check_transform(entry: Entry) -> str:
    """``transform(batch, generator)`` returns a new dict with the same keys, shapes and
    dtypes (sources in ``[0, 1]``, the mask holding only its labels, other keys passed
    through), draws only from ``generator`` (the same seed gives the same output) and per
    sample; a geometric transform moves ``a``, ``b`` and ``mask`` together, an intensity
    transform leaves the mask alone and draws per source."""
    family = entry.info.get("family")
    if family not in _FAMILIES:
        raise ContractError(f"info family={family!r}; expected one of {', '.join(_FAMILIES)}")
    takes_p = any(p.name == "p" for p in entry.parameters)
    transform = build(entry, **({"p": 1.0} if takes_p else {}))
    if not callable(transform):
        raise ContractError(f"the built transform is a {type(transform).__name__}, not callable")
    for dims in dims_of(entry, {2: (), 3: ()}):
        _check_dims(entry, transform, family, takes_p, dims)
    return ""


def _check_dims(entry: Entry, transform: Any, family: str, takes_p: bool, dims: int) -> None:
    """The checks of :func:`check_transform` on ``dims``-D batches."""
    depth = 8 if dims == 3 else 0
    _batch = functools.partial(_make_batch, depth=depth)
    batch = _batch()
    out = _run(entry, transform, batch, 0, "on a random batch")
    again = _run(entry, transform, batch, 0, "again with the same seed")
    if not all(torch.equal(out[k], again[k]) for k in _KEYS):
        raise ContractError(
            "two calls with generators of the same seed gave different outputs: draw every "
            "random number from the generator argument"
        )
    other = _run(entry, transform, batch, 1, "with another seed")
    random = not all(torch.equal(out[k], other[k]) for k in _KEYS)
    if takes_p and all(torch.equal(out[k], batch[k]) for k in _KEYS):
        raise ContractError("at p=1 it changed nothing")
    if random:
        same = _batch(identical=True)
        out = _run(entry, transform, same, 0, "on a batch of identical samples")
        if all(torch.equal(out[k][0], out[k][i]) for k in _KEYS for i in range(len(out[k]))):
            raise ContractError("every sample of a batch got the same draw: draw per sample")
    if family == "geometric":
        _check_geometric(entry, transform, depth)
    else:
        _check_intensity(entry, transform, batch, random)


def _make_batch(
    *, identical: bool = False, n: int = 6, h: int = 32, w: int = 32, depth: int = 0
) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    lead = (depth,) if depth else ()
    mask = torch.zeros(n, *lead, h, w, dtype=torch.int64)
    mask[..., 4:14, 6:20] = 1
    mask[..., 18:28, 10:16] = 3
    if depth:
        mask[:, : depth // 4] = 0  # a volume's labels differ along its depth
    a = torch.rand(n, 1, *lead, h, w, generator=g)
    b = torch.rand(n, 1, *lead, h, w, generator=g)
    if identical:
        a, b = a[:1].expand_as(a).clone(), b[:1].expand_as(b).clone()
    return {"a": a, "b": b, "mask": mask, "case_id": [f"c{i}" for i in range(n)]}


def _run(entry: Entry, transform: Any, batch: dict[str, Any], seed: int, how: str) -> Any:
    what = f"transform(batch, generator) {how}"
    before = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    with calling(entry, what):
        out = transform(dict(batch), torch.Generator().manual_seed(seed))
    if not isinstance(out, dict):
        raise ContractError(f"{what} returned a {type(out).__name__}, not a dict")
    if set(out) != set(batch) or out["case_id"] != batch["case_id"]:
        raise ContractError(f"{what} returned keys {sorted(out)}; expected {sorted(batch)}")
    if not all(torch.equal(batch[k], v) for k, v in before.items()):
        raise ContractError(f"{what} changed the input batch in place; return a new dict")
    for key in ("a", "b"):
        expect_tensor(out[key], f"{what}[{key!r}]", shape(batch[key]), dtype=torch.float32)
        if out[key].min() < 0 or out[key].max() > 1:
            raise ContractError(f"{what}[{key!r}] has values outside [0, 1]")
    expect_tensor(out["mask"], f"{what}['mask']", shape(batch["mask"]), dtype=torch.int64)
    labels = set(out["mask"].unique().tolist())
    if not labels <= set(batch["mask"].unique().tolist()):
        raise ContractError(f"{what}['mask'] holds labels {sorted(labels)}; it held 0, 1, 3")
    return out


def _check_geometric(entry: Entry, transform: Any, depth: int = 0) -> None:
    # Both sources equal to the mask's foreground: a move applied to all three keeps the
    # sources equal and the mask on them wherever the image is not blended (0 or 1).
    batch = _make_batch(depth=depth)
    fg = (batch["mask"] > 0).float()[:, None]
    batch["a"], batch["b"] = fg.clone(), fg.clone()
    out = _run(entry, transform, batch, 3, "on sources equal to the mask")
    if not torch.equal(out["a"], out["b"]):
        raise ContractError("a geometric transform moved a and b differently")
    crisp = (out["a"] == 0) | (out["a"] == 1)
    if crisp.float().mean() < 0.8:
        raise ContractError("a geometric transform blended most of a binary image's pixels")
    if not torch.equal((out["mask"][:, None] > 0)[crisp], (out["a"] > 0.5)[crisp]):
        raise ContractError("a geometric transform moved the mask and the sources differently")


def _check_intensity(entry: Entry, transform: Any, batch: dict[str, Any], random: bool) -> None:
    out = _run(entry, transform, batch, 3, "on a random batch")
    if not torch.equal(out["mask"], batch["mask"]):
        raise ContractError("an intensity transform changed the mask")
    if not random:
        return
    same = {**batch, "b": batch["a"].clone()}
    out = _run(entry, transform, same, 3, "with a equal to b")
    if not torch.equal(out["a"], same["a"]) and torch.equal(out["a"], out["b"]):
        raise ContractError("an intensity transform gave a and b the same draw: draw per source")
