"""SSIM (loss side, torch) stays float32 under bf16 autocast."""

from __future__ import annotations

import torch

from benchbox.metrics.ssim import ssim


def test_ssim_is_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 48, 48, generator=g)
    y = (x + 0.05 * torch.rand(2, 1, 48, 48, generator=g)).clamp(0, 1)
    reference = ssim(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = ssim(x, y)
        naive = torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3) / 9)
    assert naive.dtype == torch.bfloat16  # autocast is really on in this block
    assert inside.dtype == torch.float32
    assert torch.equal(inside, reference)
