"""The one loader of local weight files: safetensors or torch state dicts, never pickles.

Every weight file benchbox reads (``weights=`` of a model, ``--fusion-weights``,
``--seg-weights``, checkpoints) goes through :func:`load_weights` or
:func:`read_state_dict`. A file is read either with ``safetensors.torch.load_file`` or
with ``torch.load(path, weights_only=True, map_location="cpu")``, whose restricted
unpickler only rebuilds tensors and plain containers: a file holding arbitrary Python
objects is refused, never executed. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchbox.errors import WeightsError

if TYPE_CHECKING:
    import torch

__all__ = ["SHOW", "WRAPPER_KEYS", "ModuleT", "apply_state_dict", "load_weights", "read_state_dict"]

ModuleT = TypeVar("ModuleT", bound="torch.nn.Module")

#: Keys under which training checkpoints commonly nest the model's state dict.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model")
#: How many keys an error message names before summarising the rest as a count.
SHOW = 5


def _is_safetensors(path: Path) -> bool:
    """True for a ``.safetensors`` name, or a file that starts like one.

    A safetensors file starts with the little-endian u64 length of its JSON header,
    followed by the header's ``{``; a torch file starts with ``PK`` (zip) or a pickle
    opcode, so the two cannot be confused.
    """
    if path.suffix == ".safetensors":
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < length <= path.stat().st_size - 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _flatten(obj: Any, prefix: str = "") -> dict[str, torch.Tensor] | None:
    """``{"fusion": {"w": t}}`` -> ``{"fusion.w": t}``; ``None`` unless every leaf is a tensor."""
    import torch

    if not isinstance(obj, Mapping) or not obj:
        return None
    flat: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            return None
        if isinstance(value, torch.Tensor):
            flat[prefix + key] = value
            continue
        inner = _flatten(value, f"{prefix}{key}.")
        if inner is None:
            return None
        flat.update(inner)
    return flat


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a loaded object: itself, a checkpoint's entry, or nested ones.

    Nested state dicts (``{"fusion": {...}, "segmenter": {...}}``, as benchbox's own
    checkpoints) are flattened to dotted keys; select one with ``prefix="segmenter."``.
    """
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if _is_tensor_dict(obj.get(key)):
                return dict(obj[key])
        flat = _flatten(obj)
        if flat:
            return flat
        if not obj:
            raise WeightsError(f"weights file {path} holds an empty dict, no tensors")
        keys = ", ".join(repr(k) for k in list(obj)[:SHOW])
        raise WeightsError(
            f"weights file {path} is not a state dict: its keys ({keys}) do not all map to "
            f"tensors, and it has no {' / '.join(WRAPPER_KEYS)} entry holding one"
        )
    raise WeightsError(
        f"weights file {path} holds a {type(obj).__name__}, not a state dict "
        "(save model.state_dict(), not the model)"
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a weights file into a ``{name: tensor}`` dict on the CPU, safely.

    Accepts a ``.safetensors`` file, or a torch file (``.pt``, ``.pth``, ``.bin``,
    ``.ckpt``) holding a state dict, possibly nested in a checkpoint under one of
    :data:`WRAPPER_KEYS`, or several nested state dicts (flattened to dotted keys:
    ``segmenter.encoder.conv1.weight``). Torch files are loaded with
    ``weights_only=True``.

    Raises:
        WeightsError: the file is missing, unreadable, not a tensor file (e.g. a pickle
            of arbitrary objects or a text file), or holds no state dict.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(
            f"weights file {p} does not exist; benchbox never downloads weights: pass the "
            "path of a local .safetensors or torch state-dict file"
        )
    if _is_safetensors(p):
        from safetensors.torch import load_file

        try:
            state = load_file(str(p), device="cpu")
        except Exception as exc:
            raise WeightsError(
                f"weights file {p} is not a valid safetensors file: {_first_line(exc)}"
            ) from exc
        if not state:
            raise WeightsError(f"weights file {p} holds no tensors")
        return state
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"weights file {p} is not a tensor file (safetensors, or a torch state dict "
            f"loadable with weights_only=True): {_first_line(exc)}"
        ) from exc
    return _unwrap(obj, p)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW])
    return shown + (f", ... ({len(keys) - SHOW} more)" if len(keys) > SHOW else "")


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Suggest ``prefix=`` when the file's keys are the model's under a common prefix."""
    unexpected_set = set(unexpected)
    candidates = sorted({k.split(".", 1)[0] + "." for k in unexpected if "." in k})
    fits = [
        c
        for c in candidates
        if missing and 2 * sum(c + k in unexpected_set for k in missing) >= len(missing)
    ]
    if not fits:
        return ""
    options = " or ".join(f"prefix={c!r}" for c in fits)
    return f"; the file holds the model's keys under {', '.join(map(repr, fits))}: pass {options}"


def apply_state_dict(
    model: ModuleT,
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    allow_unexpected: bool = False,
    source: str = "state dict",
) -> ModuleT:
    """Copy ``state`` into ``model`` after checking that its keys and shapes match.

    Args:
        model: the module to fill in place.
        state: ``{name: tensor}`` as returned by :func:`read_state_dict`.
        strict: every key of the model must be in ``state`` and every key of ``state``
            in the model. With ``strict=False`` keys on either side may be absent, but
            at least one must match.
        allow_unexpected: with ``strict=True``, ignore keys of ``state`` that the model
            does not have (e.g. a classifier head) while still requiring every key of
            the model.
        source: how the error message names where ``state`` came from.

    Returns:
        ``model``, filled.

    Raises:
        WeightsError: naming the first few missing, unexpected and shape-mismatched keys
            with their counts. A shape mismatch is always an error.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in state
        if k in own and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} with another shape: {_names(mismatched)}")
    if strict and missing:
        problems.append(f"{len(missing)} missing from the file: {_names(missing)}")
    if strict and unexpected and not allow_unexpected:
        problems.append(f"{len(unexpected)} unexpected by the model: {_names(unexpected)}")
    if not problems and len(missing) == len(own):
        problems.append(f"none of its {len(state)} keys is in the model: {_names(unexpected)}")
    if problems:
        raise WeightsError(
            f"{source} does not match {type(model).__name__}: keys "
            + "; ".join(problems)
            + _prefix_hint(missing, unexpected)
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=strict)
    return model


def load_weights(
    model: ModuleT,
    path: str | os.PathLike[str],
    *,
    strict: bool = True,
    prefix: str | None = None,
) -> ModuleT:
    """Load a local weights file into ``model`` and return it.

    Args:
        model: the module to fill in place.
        path: a ``.safetensors`` file or a torch state-dict file (see
            :func:`read_state_dict`).
        strict: require the file's keys to be exactly the model's (see
            :func:`apply_state_dict`); shapes must always match.
        prefix: load only the file's keys that start with ``prefix``, with the prefix
            removed (e.g. ``"encoder."`` to fill an encoder from a whole-model file, or
            ``"module."`` for a ``DataParallel`` checkpoint).

    Raises:
        WeightsError: the file cannot be read safely, or does not match the model; the
            message names the mismatched keys.
    """
    state = read_state_dict(path)
    if prefix:
        selected = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not selected:
            heads = sorted({k.split(".", 1)[0] + "." for k in state})
            raise WeightsError(
                f"weights file {path}: no key starts with prefix {prefix!r} "
                f"(prefixes present: {_names(heads)})"
            )
        state = selected
    return apply_state_dict(model, state, strict=strict, source=f"weights file {path}")
