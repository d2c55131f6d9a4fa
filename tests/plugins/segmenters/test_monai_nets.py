"""monai-<arch>: the input checks that turn a size a network cannot take into one line."""

from __future__ import annotations

import pytest
import torch

from benchbox import ConfigError
from benchbox_plugins.segmenters.monai_nets import MonaiSegmenter


def test_a_side_the_network_cannot_divide_is_one_line():
    model = MonaiSegmenter("unet")(1, 2, spatial_dims=3, channels=(4, 8), strides=(2,))
    with pytest.raises(ConfigError, match=r"monai-unet needs every side divisible by 2"):
        model(torch.rand(1, 1, 8, 8, 9))
    with pytest.raises(ConfigError, match=r"expects \(B, 1, D, H, W\) input"):
        model(torch.rand(1, 1, 8, 8))


def test_swinunetr_refuses_an_input_whose_bottleneck_is_one_voxel():
    model = MonaiSegmenter("swinunetr")(1, 2, spatial_dims=2, feature_size=12)
    with pytest.raises(ConfigError, match=r"needs an input larger than 32 along at least one"):
        model.eval()(torch.rand(1, 1, 32, 32))
    assert model(torch.rand(1, 1, 32, 64)).shape == (1, 2, 32, 64)
