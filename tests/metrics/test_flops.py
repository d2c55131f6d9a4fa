"""Parameter and FLOP counts against analytic values (one multiply-add = 2 FLOPs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbox.metrics.flops import count_flops, count_parameters


@pytest.mark.parametrize(("batch", "stride", "padding"), [(1, 1, 1), (3, 2, 0)])
def test_conv2d_counts_two_flops_per_multiply_add(batch: int, stride: int, padding: int) -> None:
    c_in, c_out, k, h, w = 3, 8, 3, 10, 12
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (w + 2 * padding - k) // stride + 1
    macs = batch * c_out * c_in * k * k * h_out * w_out
    assert count_flops(conv, torch.rand(batch, c_in, h, w)) == 2 * macs


def test_linear_counts_two_flops_per_multiply_add_and_ignores_the_bias() -> None:
    n, d_in, d_out = 4, 5, 7
    with_bias = count_flops(nn.Linear(d_in, d_out), torch.rand(n, d_in))
    without = count_flops(nn.Linear(d_in, d_out, bias=False), torch.rand(n, d_in))
    assert with_bias == without == 2 * n * d_in * d_out


def test_grouped_conv_and_a_two_input_model() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 1)
            self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.dw(self.a(a) + self.a(b))

    h = w = 6
    expected = 2 * (2 * 4 * 1 * h * w) + 2 * (4 * 1 * 9 * h * w)
    assert count_flops(TwoInputs(), torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)) == expected


def test_normalisation_and_activations_are_not_counted() -> None:
    model = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.AvgPool2d(2), nn.Sigmoid())
    assert count_flops(model, torch.rand(2, 3, 8, 8)) == 0


def test_counting_leaves_no_trace_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a deliberately frozen norm layer must stay frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, torch.rand(4, 1, 8, 8) * 10)
    assert capsys.readouterr().out == ""
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and model[0].training and not model[1].training and model[2].training


def test_parameters_counted_once_when_shared_and_trainable_only() -> None:
    shared = nn.Linear(3, 4)  # 16 parameters
    frozen = nn.Conv2d(2, 2, 1)  # 6 parameters
    frozen.requires_grad_(False)
    model = nn.ModuleDict({"a": shared, "b": shared, "c": frozen})
    assert count_parameters(model) == 16 + 6
    assert count_parameters(model, trainable_only=True) == 16
    assert count_parameters(nn.ReLU()) == 0
