"""Post-processing of predicted label maps, and its choice on the validation split.

``--postprocess`` of ``benchbox run``:

* ``none`` (default): the network's labels are scored as they are.
* ``largest``: for each foreground class, only its largest connected component is kept
  (full connectivity: 26 neighbours in 3D, 8 in 2D, as MONAI's
  ``KeepLargestConnectedComponent`` with its default connectivity). This removes
  false-positive islands far from a single lesion, which dominate HD95. 3D cases are
  post-processed on the scan's own grid, after the slice predictions are restored.
* ``auto``: after the checkpoint is selected, the validation split is scored with and
  without ``largest`` and the test split gets the one with the better value of the
  selection metric (``dice`` if the selection metric is not a segmentation metric);
  a tie keeps ``none``. This is nnU-Net's way of deciding post-processing, on
  validation cases only; the test split is still scored once.

Checkpoint selection itself always scores the raw labels. The run records what was
asked, what was applied and both validation values (``metrics.json``,
``postprocess``), and the leaderboard row says what was applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchbox.config.run import POSTPROCESS_MODES as MODES

__all__ = ["AUTO", "LARGEST", "NONE", "PostProcess", "choose", "keep_largest", "postprocessor"]

NONE, LARGEST, AUTO = MODES

PostProcess = Callable[[np.ndarray], np.ndarray]


def keep_largest(labels: np.ndarray) -> np.ndarray:
    """``labels`` with every foreground class reduced to its largest connected component.

    Classes are treated one by one (a class's islands are removed even where they touch
    another class); background (0) is what removed voxels become. Equal-sized largest
    components: the first in scan order is kept, as :func:`numpy.argmax` picks.
    """
    from scipy import ndimage

    out = np.zeros_like(labels)
    structure = np.ones((3,) * labels.ndim, dtype=bool)  # full connectivity
    for value in np.unique(labels):
        if value == 0:
            continue
        components, count = ndimage.label(labels == value, structure=structure)
        if count == 0:  # pragma: no cover - np.unique only yields present values
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        out[components == int(sizes.argmax())] = value
    return out


def postprocessor(method: str) -> PostProcess | None:
    """The function that applies ``method`` (``none`` or ``largest``); ``None`` for none."""
    if method == LARGEST:
        return keep_largest
    if method == NONE:
        return None
    raise ValueError(f"unknown post-processing {method!r} (choices: {', '.join(MODES)})")


def choose(
    requested: str,
    validate: Callable[[PostProcess | None], dict[str, float]] | None,
    objective: Any,
    registry: Any = None,
) -> dict[str, Any]:
    """Decide the post-processing of a run's test split.

    Args:
        requested: the ``--postprocess`` value.
        validate: scores the validation split with a post-processing function (or
            ``None``) and returns its validation columns; ``None`` when the run has no
            validation split or validation is off.
        objective: the run's selection :class:`~benchbox.engine.selection.Objective`, or
            ``None`` (nothing was selected); its metric decides when it is a
            segmentation column, else the segmentation metric registered with
            ``headline=1`` (Dice).
        registry: where the headline metrics are registered (default: installed).

    Returns:
        The record kept in ``metrics.json``: ``requested``, ``applied``, and for
        ``auto`` the ``metric``, its ``mode`` and the validation value of each choice.
    """
    from benchbox.metrics.suite import headline_metrics

    record: dict[str, Any] = {"requested": requested, "applied": requested, "note": ""}
    if requested != AUTO:
        return record
    record["applied"] = NONE
    if validate is None:
        record["note"] = "no validation split to decide post-processing on: none is applied"
        return record
    raw = validate(None)
    post = validate(keep_largest)
    shown = [e.name for e in headline_metrics("segmentation", registry)]
    key, higher = (shown[0] if shown else ""), True
    if objective is not None and objective.key in raw and objective.key in post:
        key, higher = objective.key, objective.higher_is_better
    if key not in raw or key not in post:
        record["note"] = f"no val {key} to decide post-processing on: none is applied"
        return record
    before, after = float(raw[key]), float(post[key])
    better = after > before if higher else after < before
    record.update(
        applied=LARGEST if better else NONE,
        metric=key,
        mode="max" if higher else "min",
        val={NONE: before, LARGEST: after},
        val_other={
            name: {k: float(v[k]) for k in shown if k in v}
            for name, v in ((NONE, raw), (LARGEST, post))
        },
    )
    return record
