"""nnU-Net's planning rule for monai-dynunet, on cases whose nnU-Net plans are known."""

from __future__ import annotations

import pytest

from benchbox_plugins.segmenters.dynunet_plan import filters, plan


def test_isotropic_brats_like_patch():
    # nnU-Net's 3d_fullres for BraTS: 128^3 at 1 mm, five 2x2x2 downsamplings, 3x3x3.
    layout = plan((128, 128, 128), (1.0, 1.0, 1.0))
    assert layout.strides == ((1, 1, 1),) + ((2, 2, 2),) * 5
    assert layout.kernels == ((3, 3, 3),) * 6
    assert layout.pools == (5, 5, 5)


def test_anisotropic_prostate_like_patch():
    # MSD prostate (3.6 x 0.62 x 0.62 mm, patch 20 x 320 x 256): in-plane first, 1x3x3
    # kernels until the in-plane spacing catches up, as nnU-Net planned it.
    layout = plan((20, 320, 256), (3.6, 0.62, 0.62))
    assert layout.strides == (
        (1, 1, 1),
        (1, 2, 2),
        (1, 2, 2),
        (2, 2, 2),
        (2, 2, 2),
        (1, 2, 2),
        (1, 2, 2),
    )
    assert layout.kernels == ((1, 3, 3), (1, 3, 3)) + ((3, 3, 3),) * 5
    assert layout.divisor == (4, 64, 64)


def test_a_2d_slice_and_a_short_axis():
    assert plan((64, 64)).strides == ((1, 1),) + ((2, 2),) * 4
    # An axis that reaches 2 * 4 voxels stops; the others go on.
    layout = plan((16, 64, 64), (2.0, 2.0, 2.0))
    assert layout.pools == (2, 4, 4)
    assert layout.strides[-1] == (1, 2, 2)


def test_a_patch_the_plan_cannot_divide_is_refused_with_the_nearest_that_can():
    with pytest.raises(ValueError, match=r"use \(40, 64, 64\)"):
        plan((36, 64, 64))


def test_filters_double_and_are_capped():
    assert filters(6) == (32, 64, 128, 256, 320, 320)
    assert filters(3, base=16) == (16, 32, 64)


def test_the_built_network_follows_the_plan():
    from benchbox_plugins.segmenters.monai_nets import monai_dynunet

    model = monai_dynunet(1, 2, spatial_dims=3, patch_size=(16, 32, 32), filters_base=4)
    assert model.plan.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    assert [list(s) for s in model.strides] == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
