"""Segmentation losses: soft Dice, focal (Lin et al., 2017) and their weighted sum.

Every loss here takes ``forward(logits, target)`` with unnormalised logits
``(B, K, H, W)`` and an ``int64`` target ``(B, H, W)`` of class indices in ``[0, K)``
(or, in 3D, ``(B, K, D, H, W)`` and ``(B, D, H, W)``), and returns a scalar. ``K == 1``
is a binary task with a sigmoid output; it is computed exactly as the two-class softmax
over the logits ``(0, z)``, since ``softmax(0, z)[1] == sigmoid(z)``, so one code path
serves both and ``K == 1`` and ``K == 2`` agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchbox import ConfigError, DataError


def _check(logits: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """Validate the pair and return two-class logits for ``K == 1``."""
    if logits.dim() not in (4, 5) or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise DataError(
            f"{loss} loss expects logits (B, K, [D,] H, W) and a target (B, [D,] H, W), got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if target.dtype != torch.int64:
        raise DataError(f"{loss} loss expects an int64 target, got {target.dtype}")
    # Label values are not read here: that would synchronise with an accelerator at
    # every step. ``benchbox run`` checks them once per dataset
    # (benchbox.engine.train.check_labels); out-of-range labels otherwise fail inside torch.
    k = logits.shape[1]
    if k == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
    return logits


class DiceLoss(nn.Module):
    """Soft Dice loss, ``1 - mean over classes c of (2 |P_c T_c| + s) / (|P_c| + |T_c| + s)``.

    ``P_c`` are the softmax (``K >= 2``) or sigmoid (``K == 1``) probabilities of class
    ``c`` and ``T_c`` its one-hot target; the sums run over the pixels of each image, or
    of the whole batch with ``batch=True`` (the default, as nnU-Net's "batch Dice": a
    slice without lesion then does not count as a class of its own). The smoothing term
    ``s`` keeps the loss finite when a class is absent from both: predicting nothing
    there scores Dice 1 (loss 0), while predicting ``n`` pixels of probability mass
    scores ``s / (n + s)``, so a false positive on an empty target is penalised and the
    value stays in ``[0, 1]``.

    Args:
        include_background: count class 0 in the mean. Off by default: for lesion
            segmentation the background is near-perfect and would dilute the loss. For
            ``K == 1`` the single channel is the foreground; the background is then
            ``1 - sigmoid`` and is counted only with ``include_background=True``.
        smooth: the smoothing term ``s`` added to numerator and denominator (> 0).
        batch: sum over the batch before the ratio (``True``) or average per-image
            ratios (``False``).

    Shapes: logits ``(B, K, H, W)``, target ``int64 (B, H, W)`` -> scalar in ``[0, 1]``.
    """

    def __init__(
        self, include_background: bool = False, smooth: float = 1.0, batch: bool = True
    ) -> None:
        super().__init__()
        if not smooth > 0:
            raise ValueError(f"smooth must be positive, got {smooth}")
        self.include_background = include_background
        self.smooth = float(smooth)
        self.batch = batch

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _check(logits, target, "dice")
        probs = logits.float().softmax(dim=1)
        onehot = F.one_hot(target, probs.shape[1]).movedim(-1, 1).to(probs.dtype)
        if not self.include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        spatial = tuple(range(2, probs.dim()))
        dims = (0, *spatial) if self.batch else spatial
        inter = (probs * onehot).sum(dims)
        total = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (total + self.smooth)
        return 1 - dice.mean()


def _class_weights(alpha: float | Sequence[float] | None, k: int) -> list[float] | None:
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        if not 0 <= alpha <= 1:
            raise ValueError(f"focal alpha must lie in [0, 1], got {alpha}")
        return [1 - float(alpha)] + [float(alpha)] * (k - 1)
    weights = [float(a) for a in alpha]
    if len(weights) != k:
        raise ConfigError(f"focal alpha has {len(weights)} class weights for {k} classes")
    return weights


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017), ``-alpha_t (1 - p_t)**gamma log p_t``, pixel mean.

    ``p_t`` is the predicted probability of the true class (softmax over ``K >= 2``
    classes; for ``K == 1`` the sigmoid, exactly Lin's binary form). With ``gamma=0``
    and ``alpha=None`` this is the cross-entropy (binary cross-entropy for ``K == 1``).

    Args:
        gamma: focusing parameter ``>= 0``; 2 as in the paper.
        alpha: class balancing. ``None``: none. A number in ``[0, 1]``: Lin's
            ``alpha`` for the foreground classes and ``1 - alpha`` for the background
            (the paper uses 0.25). A sequence of ``max(K, 2)`` numbers: one weight per
            class. The result is the plain mean of the weighted pixel losses.

    Shapes: logits ``(B, K, H, W)``, target ``int64 (B, H, W)`` -> scalar ``>= 0``.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None):
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        if alpha is not None:
            _class_weights(alpha, 2 if isinstance(alpha, (int, float)) else len(alpha))
        self.gamma = float(gamma)
        self.alpha = alpha if alpha is None or isinstance(alpha, (int, float)) else list(alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = _check(logits, target, "focal")
        logp_t = logits.float().log_softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -logp_t
        if self.gamma:
            # 1 - p_t via expm1 stays accurate when p_t -> 1; the clamp keeps the gradient
            # of (1 - p_t)**gamma finite for gamma < 1.
            loss = (-torch.expm1(logp_t)).clamp_min(1e-12) ** self.gamma * loss
        weights = _class_weights(self.alpha, logits.shape[1])
        if weights is not None:
            loss = loss * loss.new_tensor(weights)[target]
        return loss.mean()


class HybridLoss(nn.Module):
    """``alpha * Dice + (1 - alpha) * Focal``: the seed article's hybrid loss.

    Args:
        alpha: weight of the Dice term in ``[0, 1]``.
        gamma: focal ``gamma``.
        focal_alpha: focal ``alpha`` (see :class:`FocalLoss`).
        include_background: Dice ``include_background`` (see :class:`DiceLoss`).
        smooth: Dice smoothing term.
        batch: batch Dice (see :class:`DiceLoss`).

    Shapes: logits ``(B, K, H, W)``, target ``int64 (B, H, W)`` -> scalar ``>= 0``.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        gamma: float = 2.0,
        focal_alpha: float | Sequence[float] | None = None,
        include_background: bool = False,
        smooth: float = 1.0,
        batch: bool = True,
    ) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError(f"hybrid alpha must lie in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.dice = DiceLoss(include_background, smooth, batch)
        self.focal = FocalLoss(gamma, focal_alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.alpha * self.dice(logits, target) + (1 - self.alpha) * self.focal(
            logits, target
        )
