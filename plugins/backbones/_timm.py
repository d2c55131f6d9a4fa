"""What the smp and timm-dual builders share: name checks and pretrained loading via timm.

Pretrained weights reach timm as an already-read state dict
(``pretrained_cfg_overlay={"state_dict": ...}``): benchbox reads the file safely with
:func:`benchbox.records.weights.read_state_dict`, and timm still does what only it knows per
model (checkpoint filters, adapting the first convolution to 1 or 2 input channels,
dropping the classifier). timm never sees a path or a URL, so it cannot download.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from typing import Any

from benchbox import SHOW, ConfigError, WeightsError, read_state_dict


def close_names(name: str, candidates: list[str], n: int = 5) -> list[str]:
    """Up to ``n`` candidates resembling ``name``: difflib's ratio, then shared prefixes."""
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    stem = name.split(".")[0][:5]
    close += [c for c in candidates if stem and c.startswith(stem) and c not in close]
    return close[:n]


def check_timm_model(name: str, what: str) -> None:
    """Raise :class:`ConfigError` with close names unless timm knows the model ``name``.

    ``name`` may carry a pretrained tag (``resnet18.a1_in1k``); only the architecture
    must exist, since benchbox never fetches the tagged weights.
    """
    import timm

    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: the timm model name must be a non-empty string, not {name!r}")
    if timm.is_model(name):
        return
    close = close_names(name.split(".")[0], timm.list_models())
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{what}: unknown timm model {name!r}{hint} (see timm.list_models())")


def pretrained_kwargs(weights: str | os.PathLike[str] | None, what: str) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments loading a local file, or none for random init."""
    if weights is None:
        return {"pretrained": False}
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(
            f"{what}: weights must be the path of a local file or None, not {weights!r} "
            "(benchbox never downloads weights)"
        )
    return {"pretrained": True, "pretrained_cfg_overlay": {"state_dict": read_state_dict(weights)}}


_SECTIONS = {
    "missing from the file": re.compile(r"Missing key\(s\) in state_dict: (.*?)\.\s*(?:\n|$)"),
    "unexpected by the model": re.compile(r"Unexpected key\(s\) in state_dict: (.*?)\.\s*(?:\n|$)"),
}
_SIZE = re.compile(
    r"size mismatch for ([^:]+): copying a param with shape torch\.Size\(\[(.*?)\]\) from "
    r"checkpoint, the shape in current model is torch\.Size\(\[(.*?)\]\)"
)
#: What timm logs after a non-strict pretrained load (``timm.models._builder``).
_LOGGED = {
    "missing from the file": re.compile(r"^Missing keys \((.*)\) discovered"),
    "unexpected by the model": re.compile(r"^Unexpected keys \((.*)\) found"),
}


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:SHOW]) + (f", ... ({len(keys) - SHOW} more)" if len(keys) > SHOW else "")


def _shape(text: str) -> str:
    return f"({text},)" if text and "," not in text else f"({text})"


def describe_load_error(exc: BaseException) -> str | None:
    """Summarise torch's ``load_state_dict`` error as the key counts and first keys.

    Returns ``None`` when ``exc`` is not such an error.
    """
    text = str(exc)
    if "Error(s) in loading state_dict" not in text:
        return None
    parts = []
    sizes = _SIZE.findall(text)
    if sizes:
        shown = [f"{k} (file {_shape(f)}, model {_shape(m)})" for k, f, m in sizes]
        parts.append(f"{len(sizes)} with another shape: {_names(shown)}")
    for label, pattern in _SECTIONS.items():
        match = pattern.search(text)
        if match:
            keys = re.findall(r'"([^"]+)"', match.group(1))
            parts.append(f"{len(keys)} {label}: {_names(keys)}")
    return "keys " + "; ".join(parts) if parts else text.strip().splitlines()[0]


class _TimmLog(logging.Handler):
    """Collects what timm's builder logs while loading pretrained weights."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _classifier_keys(model_name: str) -> set[str]:
    import timm

    cfg = timm.get_pretrained_cfg(model_name, allow_unregistered=True)
    names = getattr(cfg, "classifier", None) or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def build_timm(
    what: str, model_name: str, weights: str | os.PathLike[str] | None, build: Any
) -> Any:
    """Call ``build(**pretrained_kwargs)``, checking that the weights file really loaded.

    With ``features_only=True`` timm loads pretrained weights non-strictly (it drops
    the classifier) and only logs the keys it could not match, so a file for another
    model would silently leave the network random. The log is read here instead: any
    key missing from the file (other than the classifier) or unexpected by the model is
    a :class:`WeightsError`, as is a shape mismatch.
    """
    kwargs = pretrained_kwargs(weights, what)
    if weights is None:
        return build(**kwargs)
    logger = logging.getLogger("timm.models._builder")
    handler = _TimmLog()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # we report the outcome ourselves
    try:
        model = build(**kwargs)
    except RuntimeError as exc:
        summary = describe_load_error(exc)
        if summary is None:
            raise
        raise WeightsError(f"{what}: weights file {weights} does not match: {summary}") from exc
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    ignored = _classifier_keys(model_name)
    parts = []
    for label, pattern in _LOGGED.items():
        for message in handler.messages:
            match = pattern.search(message)
            keys = [k for k in match.group(1).split(", ") if k not in ignored] if match else []
            if keys:
                parts.append(f"{len(keys)} {label}: {_names(keys)}")
    if parts:
        raise WeightsError(
            f"{what}: weights file {weights} does not match: keys " + "; ".join(parts)
        )
    return model
