"""Test-time mirroring of the segmenter (benchbox.engine.tta), on analytic segmenters."""

from __future__ import annotations

import pytest
import torch

from benchbox.engine.tta import MODES, passes, segment


class _Region(torch.nn.Module):
    """A 'segmenter' that ignores its input: foreground (logit +50) inside ``rows`` x
    ``cols`` of the image, background (-50) elsewhere; one sigmoid channel or two
    softmax channels."""

    def __init__(self, rows: slice, cols: slice, channels: int = 1) -> None:
        super().__init__()
        self.rows, self.cols, self.channels = rows, cols, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = torch.full((x.shape[0], 1, *x.shape[-2:]), -50.0)
        fg[..., self.rows, self.cols] = 50.0
        return fg if self.channels == 1 else torch.cat([-fg, fg], dim=1)


@pytest.mark.parametrize("channels", [1, 2])
def test_flip_averages_the_four_mirrored_passes(channels):
    x = torch.rand(3, 1, 8, 6)
    # Foreground in the top-left quadrant: each of the 4 mirrored passes puts it in a
    # different quadrant once mirrored back, so every pixel is foreground in exactly one
    # pass and the averaged foreground probability is 1/4 everywhere.
    quadrant = _Region(slice(0, 4), slice(0, 3), channels)
    probs = segment(quadrant, x, "flip")
    assert probs.shape == (3, 2, 8, 6)
    assert torch.allclose(probs[:, 1], torch.full((3, 8, 6), 0.25), atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(3, 8, 6))
    # The left half: the left-right mirror moves it, the top-bottom one does not: 1/2.
    left = _Region(slice(None), slice(0, 3), channels)
    assert torch.allclose(segment(left, x, "flip")[:, 1], torch.full((3, 8, 6), 0.5), atol=1e-6)


def test_none_is_the_single_pass_and_a_mirror_symmetric_model_is_unchanged():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8)
    pointwise = torch.nn.Conv2d(1, 3, kernel_size=1)  # commutes with any mirroring
    with torch.no_grad():
        single = segment(pointwise, x, "none")
        assert torch.allclose(single, torch.softmax(pointwise(x), dim=1))
        assert torch.allclose(segment(pointwise, x, "flip"), single, atol=1e-6)
        # A 3x3 convolution does not commute with mirroring: flip differs from one pass.
        conv = torch.nn.Conv2d(1, 3, kernel_size=3, padding=1)
        assert not torch.allclose(segment(conv, x, "flip"), segment(conv, x, "none"))


def test_modes_and_their_passes():
    assert MODES == ("none", "flip")
    assert passes("none") == ((),)
    assert sorted(passes("flip")) == [(), (2,), (2, 3), (3,)]
    with pytest.raises(ValueError, match="unknown --tta 'rotate'"):
        passes("rotate")
