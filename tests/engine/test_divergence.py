"""A non-finite training loss is blamed on what caused it: data, weights, model, loss, lr."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbox.engine import device, train
from benchbox.errors import TrainingDivergedError


class LogLayer(nn.Module):
    """log(x - 10): NaN for every input in [0, 1], a model bug at the very first step."""

    def forward(self, x):
        return torch.log(x - 10)


class Net(nn.Module):
    def __init__(self, broken: bool = False) -> None:
        super().__init__()
        layers = [nn.Conv2d(1, 2, 3, padding=1), nn.Sigmoid(), nn.Conv2d(2, 1, 1)]
        if broken:
            layers.insert(2, LogLayer())
        self.body = nn.Sequential(*layers)

    def forward(self, a):
        return self.body(a)


class NaNLoss(nn.Module):
    def forward(self, output, target):
        return (output - target).abs().mean() * float("nan")


def batches(n: int = 8, nan_input: bool = False) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    a = torch.rand(n, 1, 8, 8)
    if nan_input:
        a[3, 0, 2, 2] = float("nan")
    return [{"a": a[i : i + 4], "y": torch.rand(4, 1, 8, 8)} for i in range(0, n, 4)]


def diverge(model: nn.Module, loss_fn, loader, lr: float = 1e-3) -> str:
    with pytest.raises(TrainingDivergedError) as info:
        train.train_stage(
            "joint",
            model.parameters(),
            lambda b: loss_fn(model(b["a"]), b["y"]),
            loader,
            epochs=3,
            lr=lr,
            weight_decay=0.0,
            warmup_steps=0,
            amp=device.resolve_amp("off", torch.device("cpu")),
        )
    return str(info.value)


def mse(output, target):
    return ((output - target) ** 2).mean()


def test_non_finite_inputs_are_blamed_not_the_learning_rate():
    message = diverge(Net(), mse, batches(nan_input=True))
    assert message.startswith("the joint loss became nan at epoch 1, step 1: the input batch")
    assert "('a')" in message and "check the data" in message
    assert "learning rate" not in message


def test_a_model_that_outputs_nan_is_named_with_the_layer():
    message = diverge(Net(broken=True), mse, batches())
    assert "step 1, before any update, with finite inputs and weights" in message
    assert "the output of 'body.2' (LogLayer) in Net, for finite inputs: check the model" in message
    assert "learning rate" not in message


def test_a_loss_that_returns_nan_for_finite_outputs_is_named():
    message = diverge(Net(), NaNLoss(), batches())
    assert "the loss NaNLoss returned a non-finite value for finite model outputs" in message
    assert "learning rate" not in message


def test_non_finite_initial_weights_are_named():
    net = Net()
    with torch.no_grad():
        net.body[0].weight[0, 0, 0, 0] = float("nan")
    message = diverge(net, mse, batches())
    assert "the model's initial weights hold NaN or infinite values" in message


def test_a_learning_rate_that_blows_the_weights_up_is_blamed():
    """AdamW moves each weight by about lr per step: after one step at lr 1e20 the
    squared error (about 1e42) overflows float32."""
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Unflatten(1, (1, 8, 8)))
    message = diverge(linear, mse, batches(), lr=1e20)
    assert "at epoch 1, step 2" in message and "after 1 update," in message
    # the lr of step 2 of 6 under the cosine schedule: 1e20 * (1 + cos(pi / 6)) / 2
    assert message.endswith(
        "every module's output is finite, so the loss computation produced it; if earlier "
        "steps were fine, lower the learning rate (lr 9.33e+19); the run is marked failed"
    )


def test_loss_computed_outside_modules():
    w = nn.Parameter(torch.zeros(()))
    with pytest.raises(TrainingDivergedError) as info:
        train.train_stage(
            "fusion",
            [w],
            lambda b: w + float("inf"),
            batches(),
            epochs=1,
            lr=0.1,
            weight_decay=0.0,
            warmup_steps=0,
            amp=device.resolve_amp("off", torch.device("cpu")),
        )
    assert "every module's output is finite, so the loss computation produced it" in str(info.value)


def test_the_diagnosis_removes_its_hooks():
    from torch.nn.modules import module

    before = (len(module._global_forward_hooks), len(module._global_forward_pre_hooks))
    diverge(Net(broken=True), mse, batches())
    after = (len(module._global_forward_hooks), len(module._global_forward_pre_hooks))
    assert after == before


@pytest.mark.parametrize(("step", "unread"), [(4, "in step 3;"), (7, "in one of steps 3-6;")])
def test_steps_whose_loss_was_not_read_are_suspects_too(step, unread):
    """The loop reads the loss every few steps: NaN weights may come from any step since."""
    from benchbox.engine.divergence import explain

    weight = torch.full((2,), float("nan"))
    message = explain(
        "fusion",
        float("nan"),
        epoch=1,
        step=step,
        lr=0.5,
        batch={"a": torch.zeros(2)},
        parameters=[weight],
        rerun=lambda: weight.sum(),
        autocast=device.resolve_amp("off", torch.device("cpu")).autocast,
        last_read=2,
    )
    assert "after step 2 (the last loss read, finite)" in message
    assert f"too high a learning rate (lr 0.5), or non-finite inputs {unread}" in message
