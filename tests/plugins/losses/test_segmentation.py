"""Dice, focal and hybrid losses against hand computations and independent references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchbox.errors import ConfigError, DataError
from benchbox.hooks.manager import create_registry
from benchbox_plugins.losses.segmentation import DiceLoss, FocalLoss, HybridLoss


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _perfect_logits(target: torch.Tensor, k: int, scale: float = 50.0) -> torch.Tensor:
    if k == 1:
        return (target.float() * 2 - 1).unsqueeze(1) * scale
    return F.one_hot(target, k).permute(0, 3, 1, 2).float() * scale


# -- Dice ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_of_a_perfect_prediction_is_zero(
    k: int, batch: bool, include_background: bool
) -> None:
    torch.manual_seed(0)
    target = torch.randint(0, max(k, 2), (3, 16, 16))
    loss = DiceLoss(include_background, batch=batch)(_perfect_logits(target, k), target)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def test_dice_hand_case() -> None:
    # one 2x2 image, lesion at (0, 0); foreground probabilities 0.8, 0.2, 0.1, 0.1
    target = torch.tensor([[[1, 0], [0, 0]]])
    probs = [[0.8, 0.2], [0.1, 0.1]]
    logits = torch.tensor([[[[_logit(p) for p in row] for row in probs]]])
    # foreground: (2 * 0.8 + 1) / (1.2 + 1 + 1) = 2.6 / 3.2
    assert float(DiceLoss()(logits, target)) == pytest.approx(1 - 2.6 / 3.2, abs=1e-6)
    # background: (2 * (0.8 + 0.9 + 0.9) + 1) / (2.8 + 3 + 1) = 6.2 / 6.8
    both = DiceLoss(include_background=True)(logits, target)
    assert float(both) == pytest.approx(1 - (2.6 / 3.2 + 6.2 / 6.8) / 2, abs=1e-6)
    two_class = torch.cat([torch.zeros_like(logits), logits], dim=1)
    assert float(DiceLoss()(two_class, target)) == pytest.approx(1 - 2.6 / 3.2, abs=1e-6)


def test_batch_dice_pools_the_batch_and_image_dice_averages() -> None:
    # image 1: perfect lesion; image 2: empty target, no prediction -> both score Dice 1
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    target[0, 2:5, 2:5] = 1
    logits = _perfect_logits(target, 1)
    assert float(DiceLoss(batch=False)(logits, target)) == pytest.approx(0, abs=1e-6)
    # image 2 now predicts 4 false pixels: its own Dice is s / (4 + s) = 1 / 5
    logits[1, 0, :2, :2] = 50.0
    assert float(DiceLoss(batch=False)(logits, target)) == pytest.approx((1 - 1 / 5) / 2, abs=1e-6)
    # pooled: (2 * 9 + 1) / (13 + 9 + 1)
    assert float(DiceLoss(batch=True)(logits, target)) == pytest.approx(1 - 19 / 23, abs=1e-6)


def test_dice_with_an_empty_target() -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    nothing = DiceLoss()(torch.full((2, 1, 8, 8), -50.0), target)
    assert float(nothing) == pytest.approx(0, abs=1e-6)
    everything = DiceLoss()(torch.full((2, 1, 8, 8), 50.0), target)
    assert float(everything) == pytest.approx(1 - 1 / (128 + 1), abs=1e-6)


def test_dice_matches_monai() -> None:
    monai_losses = pytest.importorskip("monai.losses")
    torch.manual_seed(0)
    logits, target = torch.randn(3, 4, 16, 16) * 2, torch.randint(0, 4, (3, 16, 16))
    for include_background in (True, False):
        for batch in (True, False):
            ref = monai_losses.DiceLoss(
                include_background=include_background,
                to_onehot_y=True,
                softmax=True,
                smooth_nr=1.0,
                smooth_dr=1.0,
                batch=batch,
            )(logits, target.unsqueeze(1))
            ours = DiceLoss(include_background, smooth=1.0, batch=batch)(logits, target)
            torch.testing.assert_close(ours, ref)


# -- focal --------------------------------------------------------------------------------
def test_focal_with_gamma_0_is_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8) * 3, torch.randint(0, 3, (2, 8, 8))
    torch.testing.assert_close(FocalLoss(gamma=0)(logits, target), F.cross_entropy(logits, target))
    binary = torch.randn(2, 1, 8, 8) * 3
    labels = torch.randint(0, 2, (2, 8, 8))
    ref = F.binary_cross_entropy_with_logits(binary[:, 0], labels.float())
    torch.testing.assert_close(FocalLoss(gamma=0)(binary, labels), ref)


def test_focal_hand_case() -> None:
    # one pixel of class 2, softmax probabilities (0.05, 0.05, 0.9): -(0.1**2) log 0.9
    logits = torch.log(torch.tensor([0.05, 0.05, 0.9])).view(1, 3, 1, 1)
    target = torch.tensor([[[2]]])
    expected = -(0.1**2) * math.log(0.9)
    assert float(FocalLoss(gamma=2)(logits, target)) == pytest.approx(expected, rel=1e-5)
    weighted = FocalLoss(gamma=2, alpha=[0.2, 0.3, 0.5])(logits, target)
    assert float(weighted) == pytest.approx(0.5 * expected, rel=1e-5)


@pytest.mark.parametrize("alpha", [0.25, 0.8])
@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.0])
def test_binary_focal_matches_torchvision(alpha: float, gamma: float) -> None:
    from torchvision.ops import sigmoid_focal_loss

    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 8, 8) * 3, torch.randint(0, 2, (2, 8, 8))
    ref = sigmoid_focal_loss(
        logits[:, 0], target.float(), alpha=alpha, gamma=gamma, reduction="mean"
    )
    torch.testing.assert_close(FocalLoss(gamma, alpha)(logits, target), ref)
    # the same loss through the two-class softmax path
    two = torch.cat([torch.zeros_like(logits), logits], dim=1)
    torch.testing.assert_close(FocalLoss(gamma, alpha)(two, target), ref)


def test_focal_class_weights_follow_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    w = [0.2, 1.0, 3.0]
    ref = F.cross_entropy(logits, target, weight=torch.tensor(w), reduction="none").mean()
    torch.testing.assert_close(FocalLoss(gamma=0, alpha=w)(logits, target), ref)


def test_focal_is_finite_and_small_for_confident_correct_logits() -> None:
    target = torch.randint(0, 3, (1, 8, 8))
    logits = _perfect_logits(target, 3, scale=1e4).requires_grad_(True)
    loss = FocalLoss(gamma=0.5)(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# -- hybrid -------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("k", [1, 3])
def test_hybrid_is_the_weighted_sum(alpha: float, k: int) -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, k, 8, 8), torch.randint(0, max(k, 2), (2, 8, 8))
    dice = DiceLoss(include_background=True, smooth=0.5)(logits, target)
    focal = FocalLoss(gamma=1.5, alpha=0.25)(logits, target)
    hybrid = HybridLoss(alpha, 1.5, 0.25, include_background=True, smooth=0.5)(logits, target)
    torch.testing.assert_close(hybrid, alpha * dice + (1 - alpha) * focal)


def test_hybrid_default_is_half_and_half() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 2, 8, 8), torch.randint(0, 2, (2, 8, 8))
    hybrid = create_registry().get("loss", "hybrid").build()
    torch.testing.assert_close(
        hybrid(logits, target), 0.5 * DiceLoss()(logits, target) + 0.5 * FocalLoss()(logits, target)
    )


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("logits", "target", "match"),
    [
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64), "target"),
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4), "int64"),
    ],
)
@pytest.mark.parametrize("loss", [DiceLoss(), FocalLoss(), HybridLoss()])
def test_bad_targets_are_data_errors(
    loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor, match: str
) -> None:
    with pytest.raises(DataError, match=match):
        loss(logits, target)


def test_label_values_are_not_read_by_the_losses() -> None:
    # Reading them would synchronise with an accelerator at every step; the runner
    # checks the labels once per dataset (tests/test_train.py). torch still refuses them.
    with pytest.raises(RuntimeError):
        DiceLoss()(torch.zeros(1, 2, 4, 4), torch.full((1, 4, 4), 2))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("dice", {"smooth": 0}),
        ("focal", {"gamma": -1}),
        ("focal", {"alpha": 1.5}),
        ("hybrid", {"alpha": 2}),
    ],
)
def test_bad_parameters_are_config_errors(name: str, params: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=name):
        create_registry().get("loss", name).build(**params)


def test_alpha_list_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError, match="3 class weights for 2 classes"):
        FocalLoss(alpha=[0.1, 0.2, 0.7])(
            torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64)
        )
