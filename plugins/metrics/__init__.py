"""Built-in metrics: the fusion and segmentation suites of :mod:`benchbox.metrics`.

Registered through the public ``register_metrics`` hook exactly as a third-party
package would register its own. The metric functions live in the core (they are pure
functions the tests check); the adapters below only give each the signature the hook
contract asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchbox import hookimpl
from benchbox.metrics import fusion as fm
from benchbox.metrics import segmentation as sm


def _first_line(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0].rstrip(".")


def _on_fused(fn: Callable[[Any], float]) -> Callable[[Any, Any, Any], float]:
    """A fusion metric of the fused image alone, called as ``metric(fused, a, b)``."""

    def metric(fused: Any, a: Any, b: Any) -> float:
        return fn(fused)

    metric.__name__ = metric.__qualname__ = fn.__name__
    metric.__doc__ = fn.__doc__
    return metric


def _without_spacing(fn: Callable[[Any, Any], float]) -> Callable[[Any, Any, Any], float]:
    """An overlap metric, called as ``metric(pred, ref, spacing)``."""

    def metric(pred: Any, ref: Any, spacing: Any) -> float:
        return fn(pred, ref)

    metric.__name__ = metric.__qualname__ = fn.__name__
    metric.__doc__ = fn.__doc__
    return metric


#: name -> (function, higher_is_better, extra info). ``headline`` orders the columns
#: that leaderboard tables show by default (SSIM, Qabf and VIF first, as fusion papers
#: report them; Dice, HD95 and NSD for segmentation, as the Medical Segmentation
#: Decathlon and Metrics Reloaded recommend an overlap and a boundary metric).
FUSION: dict[str, tuple[Callable[..., Any], bool, dict[str, Any]]] = {
    "en": (_on_fused(fm.compute_en), True, {"unit": "bits", "headline": 5}),
    "sd": (_on_fused(fm.compute_sd), True, {"headline": 6}),
    "sf": (_on_fused(fm.compute_sf), True, {"min_size": 2, "headline": 7}),
    "ag": (_on_fused(fm.compute_ag), True, {"min_size": 2, "headline": 8}),
    "mi": (fm.compute_mi, True, {"unit": "bits", "headline": 4}),
    "scd": (fm.compute_scd, True, {}),
    "vif": (fm.compute_vif, True, {"min_size": fm.VIF_MIN_SIZE, "headline": 3}),
    "qabf": (fm.compute_qabf, True, {"headline": 2}),
    "nabf": (fm.compute_nabf, False, {}),
    "ssim": (
        fm.compute_ssim,
        True,
        {"min_size": fm.SSIM_MIN_SIZE, "headline": 1, "headline_key": "mean"},
    ),
    "ms-ssim": (fm.compute_ms_ssim, True, {"min_size": fm.MS_SSIM_MIN_SIZE}),
    "psnr": (fm.compute_psnr, True, {"unit": "dB", "headline": 9}),
}

SEGMENTATION: dict[str, tuple[Callable[..., Any], bool, dict[str, Any]]] = {
    "dice": (_without_spacing(sm.compute_dice), True, {"headline": 1}),
    "iou": (_without_spacing(sm.compute_iou), True, {}),
    "precision": (_without_spacing(sm.compute_precision), True, {}),
    "recall": (_without_spacing(sm.compute_recall), True, {}),
    "hd": (sm.compute_hd, False, {"unit": "mm"}),
    "hd95": (sm.compute_hd95, False, {"unit": "mm", "headline": 2}),
    "assd": (sm.compute_assd, False, {"unit": "mm"}),
    "nsd": (sm.compute_nsd, True, {"headline": 3}),
}


@hookimpl
def register_metrics(register: Callable[..., None]) -> None:
    for task, table in (("fusion", FUSION), ("segmentation", SEGMENTATION)):
        for name, (fn, higher, info) in table.items():
            register(
                name,
                fn,
                description=_first_line(fn),
                task=task,
                higher_is_better=higher,
                **info,
            )
