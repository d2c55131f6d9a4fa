"""Sliding-window inference of 3D runs: MONAI's, with benchbox's passes and timing."""

from __future__ import annotations

import torch

from benchbox.engine.device import resolve_amp
from benchbox.engine.inference import Predictor
from benchbox.engine.tta import passes
from benchbox.engine.windows import SIGMA_SCALE, Windows
from benchbox_plugins.segmenters.attunet import unet


def _setup():
    torch.manual_seed(0)
    segmenter = unet(2, 3, width=2, depth=1, spatial_dims=3).eval()
    cpu = torch.device("cpu")
    a, b = torch.rand(1, 1, 12, 20, 24), torch.rand(1, 1, 12, 20, 24)
    return segmenter, cpu, a, b


def test_predict_volume_equals_monai_sliding_window_inference_called_directly():
    from monai.inferers import sliding_window_inference

    segmenter, cpu, a, b = _setup()
    windows = Windows((8, 16, 16), overlap=0.5, batch=3)
    predictor = Predictor(None, segmenter, cpu, resolve_amp("off", cpu), windows=windows)
    fused, probs = predictor.volume(a, b)
    with torch.inference_mode():
        direct = sliding_window_inference(
            torch.cat([a, b], dim=1),
            (8, 16, 16),
            3,
            lambda x: torch.softmax(segmenter(x), dim=1),
            overlap=0.5,
            mode="gaussian",
            sigma_scale=SIGMA_SCALE,
        )
    assert fused is None and probs is not None
    torch.testing.assert_close(probs, direct, atol=1e-6, rtol=0)
    assert predictor.images == 12  # slices of the volume predicted


def test_flip_mirrors_every_window_along_its_three_axes():
    assert len(set(passes("flip", 3))) == 8 and passes("flip", 2) == ((), (3,), (2,), (2, 3))
    segmenter, cpu, a, b = _setup()
    calls: list[tuple[int, ...]] = []
    segmenter.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape)))
    windows = Windows((12, 20, 24), overlap=0.5, batch=1)
    amp = resolve_amp("off", cpu)
    plain = Predictor(None, segmenter, cpu, amp, windows=windows).volume(a, b)[1]
    calls.clear()
    flipped = Predictor(None, segmenter, cpu, amp, "flip", windows).volume(a, b)[1]
    # One window (the whole volume), 8 mirrored passes; the untimed warm-up window too.
    assert len(calls) == 2 * 8
    assert flipped is not None and plain is not None
    torch.testing.assert_close(flipped.sum(1), torch.ones_like(flipped.sum(1)))
    assert not torch.allclose(flipped, plain)
