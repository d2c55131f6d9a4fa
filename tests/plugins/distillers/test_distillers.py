"""The built-in distillers against values computed by hand and by torch's own KL."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchbox import ConfigError, DataError, get_distiller, list_distillers
from benchbox.metrics.ssim import ssim


def logits(*values: float) -> torch.Tensor:
    """One image of one pixel with ``K = len(values)`` class logits: ``(1, K, 1, 1)``."""
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def pixels(*values: float) -> torch.Tensor:
    """One class map of ``len(values)`` pixels: ``(1, 1, 1, N)``."""
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def test_the_built_ins_are_registered_with_their_task():
    tasks = {e.name: e.info["task"] for e in list_distillers()}
    assert tasks == {"logits": "segmentation", "cwd": "segmentation", "fused": "fusion"}


@pytest.mark.parametrize("name", ["logits", "cwd"])
def test_identical_logits_give_zero(name):
    z = torch.randn(2, 3, 8, 8) * 5
    assert get_distiller(name)({"logits": z}, {"logits": z.clone()}).item() == pytest.approx(
        0, abs=1e-6
    )


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_logits_is_t_squared_kl_of_softened_class_probabilities(temperature):
    # Teacher (0, ln 3) against student (0, 0): at T = 1 the teacher says (1/4, 3/4) and
    # the student (1/2, 1/2); at T = 2 the teacher's odds become sqrt(3).
    odds = 3 ** (1 / temperature)
    p_teacher = [1 / (1 + odds), odds / (1 + odds)]
    expected = temperature**2 * kl(p_teacher, [0.5, 0.5])
    distiller = get_distiller("logits", temperature=temperature)
    got = distiller({"logits": logits(0, 0)}, {"logits": logits(0, math.log(3))})
    assert got.item() == pytest.approx(expected, rel=1e-6)
    if temperature == 1.0:
        assert expected == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))


def test_logits_matches_torch_kl_div_averaged_over_pixels():
    s, t = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    temp = 3.0
    reference = F.kl_div(
        F.log_softmax(s / temp, 1), F.log_softmax(t / temp, 1), log_target=True, reduction="sum"
    ) / (2 * 5 * 6)
    got = get_distiller("logits", temperature=temp, weight=0.5)({"logits": s}, {"logits": t})
    assert got.item() == pytest.approx(0.5 * temp**2 * reference.item(), rel=1e-5)


def test_logits_reads_one_sigmoid_channel_as_two_classes():
    z_s, z_t = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    distiller = get_distiller("logits")
    one = distiller({"logits": z_s}, {"logits": z_t})
    two = distiller(
        {"logits": torch.cat([torch.zeros_like(z_s), z_s], 1)},
        {"logits": torch.cat([torch.zeros_like(z_t), z_t], 1)},
    )
    assert one.item() == pytest.approx(two.item(), rel=1e-6)
    # A sigmoid student against a two-class teacher is the same comparison.
    mixed = distiller({"logits": z_s}, {"logits": torch.cat([torch.zeros_like(z_t), z_t], 1)})
    assert mixed.item() == pytest.approx(one.item(), rel=1e-6)


def test_cwd_softens_each_class_map_over_its_pixels():
    # The same numbers as the logits case, over two pixels of one class map instead of
    # two classes of one pixel.
    got = get_distiller("cwd", temperature=1.0)(
        {"logits": pixels(0, 0)}, {"logits": pixels(0, math.log(3))}
    )
    assert got.item() == pytest.approx(kl([0.25, 0.75], [0.5, 0.5]), rel=1e-6)


def test_cwd_averages_over_images_and_classes_and_scales_by_t_squared():
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    temp = 4.0
    terms = [
        kl(
            F.softmax(t[b, c].flatten() / temp, 0).tolist(),
            F.softmax(s[b, c].flatten() / temp, 0).tolist(),
        )
        for b in range(2)
        for c in range(3)
    ]
    got = get_distiller("cwd", temperature=temp)({"logits": s}, {"logits": t})
    assert got.item() == pytest.approx(temp**2 * sum(terms) / len(terms), rel=1e-5)


def test_the_two_logit_distillers_see_different_things():
    """cwd ignores a constant added to a class map (where a class is, not how sure);
    logits ignores a constant added to every class of a pixel."""
    z = torch.randn(1, 2, 4, 4)
    per_class = z + torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)
    per_pixel = z + torch.randn(1, 1, 4, 4)
    cwd, hinton = get_distiller("cwd"), get_distiller("logits")
    assert cwd({"logits": per_class}, {"logits": z}).item() == pytest.approx(0, abs=1e-6)
    assert hinton({"logits": per_class}, {"logits": z}).item() > 1e-3
    assert hinton({"logits": per_pixel}, {"logits": z}).item() == pytest.approx(0, abs=1e-6)
    assert cwd({"logits": per_pixel}, {"logits": z}).item() > 1e-3


@pytest.mark.parametrize("name", ["logits", "cwd", "fused"])
def test_the_student_gets_a_gradient_and_the_teacher_none(name):
    key, shape = ("fused", (2, 1, 16, 16)) if name == "fused" else ("logits", (2, 2, 8, 8))
    s = torch.rand(shape, requires_grad=True)
    t = torch.rand(shape, requires_grad=True)
    get_distiller(name)({key: s}, {key: t}).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_fused_l1_and_ssim():
    s, t = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.5)
    assert get_distiller("fused")({"fused": s}, {"fused": t}).item() == pytest.approx(0.3)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    got = get_distiller("fused", distance="ssim", weight=2.0)({"fused": a}, {"fused": b})
    assert got.item() == pytest.approx(2 * (1 - ssim(a, b).mean().item()), rel=1e-6)
    assert get_distiller("fused", distance="ssim")({"fused": a}, {"fused": a}).item() == (
        pytest.approx(0, abs=1e-6)
    )


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("logits", {"temperature": 0.0}, "temperature must be a number > 0"),
        ("cwd", {"weight": -1.0}, "weight must be a number > 0"),
        ("fused", {"distance": "l2"}, "distance must be one of l1, ssim"),
    ],
)
def test_bad_parameters_are_configuration_errors(name, params, match):
    with pytest.raises(ConfigError, match=match):
        get_distiller(name, **params)


def test_a_missing_output_or_a_shape_mismatch_is_named():
    z = torch.randn(1, 2, 4, 4)
    with pytest.raises(DataError, match="compares 'logits', which the teacher does not give"):
        get_distiller("logits")({"logits": z}, {"fused": torch.rand(1, 1, 4, 4)})
    with pytest.raises(DataError, match=r"student logits \(1, 2, 4, 4\) and teacher logits"):
        get_distiller("cwd")({"logits": z}, {"logits": torch.randn(1, 3, 4, 4)})


@pytest.mark.parametrize("name", ["logits", "cwd"])
def test_3d_logits_are_distilled_voxel_by_voxel(name):
    # A (B, K, D, H, W) volume gives what its voxels laid out as one (B, K, D*H, W)
    # image give: the KL is per voxel (logits) or over all voxels of a class map (cwd).
    s, t = torch.randn(2, 2, 3, 4, 5), torch.randn(2, 2, 3, 4, 5)
    distiller = get_distiller(name, temperature=2.0)
    volume = distiller({"logits": s}, {"logits": t})
    flat = distiller({"logits": s.flatten(2, 3)}, {"logits": t.flatten(2, 3)})
    assert volume.item() == pytest.approx(flat.item(), rel=1e-6) and volume.item() > 0
    with pytest.raises(DataError, match=r"\(B, K, H, W\) or \(B, K, D, H, W\), got"):
        distiller({"logits": s}, {"logits": t[:, :, 0]})


def test_3d_fused_volumes_are_compared_slice_by_slice():
    a, b = torch.rand(2, 1, 3, 16, 16), torch.rand(2, 1, 3, 16, 16)
    slices = (a.transpose(1, 2).flatten(0, 1), b.transpose(1, 2).flatten(0, 1))
    for distance in ("l1", "ssim"):
        distiller = get_distiller("fused", distance=distance)
        expected = distiller({"fused": slices[0]}, {"fused": slices[1]}).item()
        assert distiller({"fused": a}, {"fused": b}).item() == pytest.approx(expected, rel=1e-6)


def test_the_built_in_distillers_declare_3d():
    for entry in list_distillers():
        assert tuple(entry.info["dims"]) == (2, 3), entry.name
