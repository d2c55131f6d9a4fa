"""What the checks of every kind share: building a component, calling its code, and the
tensor expectations of :mod:`benchbox.hookspecs`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from benchbox import Entry, errors
from benchbox.testing.result import ContractError, Unavailable

__all__ = [
    "FUSION_SIZES",
    "SEGMENTER_SIZES",
    "build",
    "calling",
    "check_gradients",
    "dims_of",
    "expect_module",
    "expect_tensor",
    "segmenter_size",
    "shape",
    "trainable",
]

#: The spatial sizes of the tiny inputs by dimensionality (``info["dims"]``): not
#: square, so a transposed axis shows, and multiples of what the hookspecs promise
#: (16 for fusion models; 32 for segmenters in 2D, 16 in 3D unless a segmenter declares
#: a larger ``multiple``: see :func:`segmenter_size`), the smallest such sizes.
FUSION_SIZES: Mapping[int, tuple[int, ...]] = {2: (32, 48), 3: (16, 32, 48)}
SEGMENTER_SIZES: Mapping[int, tuple[int, ...]] = {2: (32, 64), 3: (16, 16, 48)}


def segmenter_size(entry: Entry, dims: int) -> tuple[int, ...]:
    """The contract's input size for a segmenter in ``dims`` D: :data:`SEGMENTER_SIZES`,
    in 3D each side rounded up to the ``multiple`` the segmenter declares (default 16):
    ``(16, 16, 48)``, or ``(32, 32, 64)`` for a multiple of 32."""
    size = SEGMENTER_SIZES[dims]
    multiple = entry.info.get("multiple", 16) if dims == 3 else 1
    if not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1:
        raise ContractError(f"info multiple={multiple!r}; expected an int >= 1")
    return tuple(-(-n // multiple) * multiple for n in size)


def dims_of(entry: Entry, sizes: Mapping[int, tuple[int, ...]]) -> tuple[int, ...]:
    """The dimensionalities a model declares in ``info["dims"]`` (default ``(2,)``)."""
    dims = entry.info.get("dims", (2,))
    if isinstance(dims, int):
        dims = (dims,)
    if (
        not isinstance(dims, Sequence)
        or not dims
        or not all(isinstance(d, int) and d in sizes for d in dims)
    ):
        known = " and/or ".join(str(d) for d in sizes)
        raise ContractError(f"info dims={dims!r}; expected a tuple of {known}")
    return tuple(dims)


@contextmanager
def calling(entry: Entry, what: str) -> Iterator[None]:
    """Report an exception raised by the component's own code while doing ``what`` as a
    broken contract, in one line (where in the plugin's code it was raised)."""
    try:
        yield
    except (ContractError, Unavailable):
        raise
    except Exception as exc:
        raise ContractError(f"{what} raised {errors.describe(exc, entry.package)}") from exc


def build(entry: Entry, **contract: Any) -> Any:
    """Build ``entry`` with its default parameters and the arguments its contract
    passes (``in_channels``, ``num_classes``).

    Raises:
        Unavailable: the factory requires another parameter, or refuses to build with a
            :class:`benchbox.errors.ConfigError` or :class:`~benchbox.errors.DataError`
            (the documented way to say that a library or data is missing).
        ContractError: the factory raised anything else.
    """
    required = [p.name for p in entry.parameters if p.required and p.name not in contract]
    if required:
        raise Unavailable(
            f"its factory requires {', '.join(required)}; the kit builds with defaults only"
        )
    try:
        return entry.factory(**contract)
    except (errors.ConfigError, errors.DataError) as exc:
        raise Unavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    except Exception as exc:
        args = ", ".join(f"{k}={v!r}" for k, v in contract.items())
        raise ContractError(
            f"building it with default parameters{f' and {args}' if args else ''} raised "
            f"{errors.describe(exc, entry.package)}"
        ) from exc


def shape(x: Any) -> tuple[int, ...]:
    """A tensor's shape as a plain tuple, for messages."""
    return tuple(int(n) for n in x.shape)


def expect_module(obj: Any, what: str) -> None:
    """``obj`` must be a ``torch.nn.Module``."""
    from torch import nn

    if not isinstance(obj, nn.Module):
        raise ContractError(f"{what} is a {type(obj).__name__}, not a torch.nn.Module")


def expect_tensor(
    x: Any,
    what: str,
    expected: tuple[int, ...],
    *,
    dtype: Any = None,
    floating: bool = False,
    unit_range: bool = False,
) -> None:
    """Check an output tensor against its contract.

    Args:
        x: the output.
        what: what produced it, for the message (``"forward(a, b) on (2, 1, 32, 48)"``).
        expected: the expected shape.
        dtype: the required dtype, if any.
        floating: require a floating dtype.
        unit_range: require every value in ``[0, 1]``.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise ContractError(f"{what} returned a {type(x).__name__}, not a tensor")
    if shape(x) != expected:
        raise ContractError(f"{what} returned shape {shape(x)}; expected {expected}")
    if dtype is not None and x.dtype != dtype:
        raise ContractError(f"{what} returned {x.dtype}; expected {dtype}")
    if floating and not x.is_floating_point():
        raise ContractError(f"{what} returned {x.dtype}; expected a floating dtype")
    x = x.detach()
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ContractError(f"{what} returned non-finite values")
    if unit_range and (x.min() < 0 or x.max() > 1):
        raise ContractError(
            f"{what} returned values in [{float(x.min()):.4g}, {float(x.max()):.4g}]; "
            "expected [0, 1]"
        )


def trainable(model: Any) -> list[Any]:
    """The parameters of ``model`` that require a gradient."""
    return [p for p in model.parameters() if p.requires_grad]


def check_gradients(params: list[Any], what: str) -> None:
    """After a backward pass: some parameter got a gradient, all finite, not all zero."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise ContractError(f"{what}: no parameter received a gradient")
    if not all(torch.isfinite(g).all() for g in grads):
        raise ContractError(f"{what}: a gradient is not finite")
    if not any(g.abs().sum() > 0 for g in grads):
        raise ContractError(f"{what}: every gradient is zero")
