"""score_fusion_case, score_segmentation_case and summarize, with plugin metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

import benchbox_plugins.metrics as builtin_metrics
from benchbox import hookimpl
from benchbox.errors import ConfigError, MetricInputError, PluginBugError, PluginError
from benchbox.hooks.manager import create_registry, use_registry
from benchbox.metrics import fusion as fm
from benchbox.metrics import segmentation as sm
from benchbox.metrics import suite
from benchbox.metrics import summary as summary_mod
from benchbox.metrics.filters import row_strips

FUSION_COLUMNS = {
    "ag", "en", "mi", "ms-ssim", "nabf", "psnr", "qabf", "scd", "sd", "sf",
    "ssim_a", "ssim_b", "ssim_mean", "ssim_sum", "vif",
}  # fmt: skip
SEG_METRICS = ("assd", "dice", "hd", "hd95", "iou", "nsd", "precision", "recall")


class ThirdParty:
    """A plugin as another package would write it."""

    __name__ = "third-party"

    @staticmethod
    @hookimpl
    def register_metrics(register):
        def abs_diff(fused, a, b):
            """Mean absolute difference to each source."""
            return {"a": float(np.abs(fused - a).mean()), "b": float(np.abs(fused - b).mean())}

        def volume_ratio(pred, ref, spacing):
            """Predicted over reference volume, 1 when both are empty."""
            return float((pred.sum() + 1) / (ref.sum() + 1))

        def within(pred, ref, spacing, tolerance=0.0):
            """Echo the tolerance the suite passed."""
            return tolerance

        register("abs-diff", abs_diff, task="fusion", higher_is_better=False)
        register("volume-ratio", volume_ratio, task="segmentation", higher_is_better=False)
        register("echo-tolerance", within, task="segmentation", higher_is_better=True)


class Broken:
    __name__ = "broken"

    @staticmethod
    @hookimpl
    def register_metrics(register):
        register("nan-metric", lambda fused, a, b: math.nan, task="fusion", higher_is_better=True)


@pytest.fixture
def registry():
    reg = create_registry([builtin_metrics, ThirdParty], entry_points=False, strict=True)
    with use_registry(reg):
        yield reg


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    a, b = (ndimage.gaussian_filter(rng.random((192, 192)), s) for s in (1.0, 3.0))
    a, b = ((x - x.min()) / (x.max() - x.min()) for x in (a, b))
    return (a + b) / 2, a, b


@pytest.fixture(scope="module")
def labels():
    """BraTS-like 3D labels: oedema shell, core with necrosis and enhancing tumour."""
    zz, yy, xx = np.mgrid[0:20, 0:24, 0:24]
    r = np.sqrt((zz - 10) ** 2 + ((yy - 12) / 1.2) ** 2 + (xx - 12) ** 2)
    ref = np.zeros((20, 24, 24), np.int64)
    ref[r < 8] = 2
    ref[r < 5] = 4
    ref[r < 3] = 1
    pred = np.roll(ref, 1, axis=2)
    pred[pred == 1] = 3  # necrosis called non-enhancing: still tumour core
    return pred, ref


# -- fusion ----------------------------------------------------------------------------
def test_fusion_case_has_every_builtin_column_and_the_plugins(registry, images) -> None:
    f, a, b = images
    row = suite.score_fusion_case(f, a, b)
    assert set(row) == FUSION_COLUMNS | {"abs-diff_a", "abs-diff_b"}
    assert row["vif"] == fm.compute_vif(f, a, b)
    assert row["ssim_mean"] == fm.compute_ssim(f, a, b)["mean"]
    assert row["abs-diff_a"] == pytest.approx(np.abs(f - a).mean())
    assert all(isinstance(v, float) and math.isfinite(v) for v in row.values())


def test_fusion_case_takes_torch_tensors(registry, images) -> None:
    torch = pytest.importorskip("torch")
    f, a, b = images
    row = suite.score_fusion_case(*(torch.from_numpy(x).float() for x in images))
    assert row["psnr"] == pytest.approx(fm.compute_psnr(f, a, b), rel=1e-5)


def test_small_images_leave_out_ms_ssim_with_a_warning(registry, images) -> None:
    f, a, b = (x[:64, :64] for x in images)
    with pytest.warns(UserWarning, match=r"too small for ms-ssim \(needs 176\)"):
        row = suite.score_fusion_case(f, a, b)
    assert "ms-ssim" not in row and "ssim_mean" in row
    with pytest.raises(MetricInputError, match="MS-SSIM needs"):
        suite.score_fusion_case(f, a, b, metrics=[registry.get("metric", "ms-ssim")])


def test_explicit_metric_list(registry, images) -> None:
    row = suite.score_fusion_case(*images, metrics=[registry.get("metric", "en")])
    assert list(row) == ["en"]


def test_a_nan_result_is_a_plugin_error_naming_the_metric(images) -> None:
    reg = create_registry([Broken], entry_points=False)
    with pytest.raises(PluginError, match=r"metric 'nan-metric' .*returned nan"):
        suite.score_fusion_case(*images, metrics=reg.list("metric"))


def test_fusion_bad_input_is_named(registry, images) -> None:
    f, a, b = images
    with pytest.raises(MetricInputError, match=r"^b has shape"):
        suite.score_fusion_case(f, a, b[:-1])
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MetricInputError, match=r"^fused contains NaN"):
        suite.score_fusion_case(bad, a, b)


# -- segmentation ----------------------------------------------------------------------
#: Overlapping regions over four labels (BraTS's, written out: the suite knows no preset).
REGIONS = {"whole-tumour": (1, 2, 3, 4), "tumour-core": (1, 3, 4), "enhancing-tumour": (4,)}


def test_segmentation_case_columns_per_region(registry, labels) -> None:
    pred, ref = labels
    spacing = (2.0, 1.0, 0.8)
    row = suite.score_segmentation_case(pred, ref, spacing, REGIONS)
    for region, values in REGIONS.items():
        p, r = np.isin(pred, values), np.isin(ref, values)
        assert row[f"dice_{region}"] == sm.compute_dice(p, r)
        assert row[f"hd95_{region}"] == sm.compute_hd95(p, r, spacing)
        assert row[f"nsd_{region}"] == sm.compute_nsd(p, r, spacing, sm.DEFAULT_NSD_TOLERANCE)
        assert row[f"ref_empty_{region}"] == 0.0 and row[f"pred_empty_{region}"] == 0.0
        assert row[f"volume-ratio_{region}"] == pytest.approx((p.sum() + 1) / (r.sum() + 1))
        for metric in SEG_METRICS:
            assert math.isfinite(row[f"{metric}_{region}"])
    assert row["dice_tumour-core"] < 1.0 and row["dice_whole-tumour"] < 1.0
    expected = {f"{m}_{r}" for m in (*SEG_METRICS, "volume-ratio", "echo-tolerance") for r in
                REGIONS} | {f"{f}_{r}" for f in suite.EMPTY_FLAGS for r in
                REGIONS}  # fmt: skip
    assert set(row) == expected


def test_nsd_tolerance_reaches_every_metric_that_takes_it(registry, labels) -> None:
    pred, ref = labels
    regions = {"tumour": (1, 2, 3, 4)}
    row = suite.score_segmentation_case(pred, ref, (1, 1, 1), regions, nsd_tolerance=0.5)
    wide = suite.score_segmentation_case(pred, ref, (1, 1, 1), regions, nsd_tolerance=3.0)
    assert row["echo-tolerance_tumour"] == 0.5 and wide["echo-tolerance_tumour"] == 3.0
    assert row["nsd_tumour"] < wide["nsd_tumour"] == 1.0


def test_2d_case_and_empty_flags(registry) -> None:
    ref = np.zeros((16, 16), np.uint8)
    ref[4:9, 4:9] = 1
    pred = np.zeros_like(ref)
    regions = {"lesion": (1,), "other": (2,)}
    row = suite.score_segmentation_case(pred, ref, (0.5, 0.5), regions)
    assert row["ref_empty_lesion"] == 0.0 and row["pred_empty_lesion"] == 1.0
    assert row["dice_lesion"] == 0.0
    assert row["hd95_lesion"] == pytest.approx(math.hypot(8, 8))
    assert row["ref_empty_other"] == row["pred_empty_other"] == 1.0
    assert row["dice_other"] == 1.0 and row["hd_other"] == 0.0 and row["nsd_other"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred": np.zeros((4, 4), float)}, "pred must hold integer labels"),
        ({"ref": np.zeros((4, 5), int)}, r"pred has shape \(4, 4\) but ref has shape \(4, 5\)"),
        ({"spacing": (1.0, 1.0, 1.0)}, "spacing has 3 values"),
        ({"regions": {}}, "regions must be a non-empty mapping"),
        ({"regions": {"a b": (1,)}}, "region name 'a b'"),
        ({"regions": {"x": (1.5,)}}, "region 'x': labels must be"),
        ({"nsd_tolerance": -1}, "tolerance must be"),
    ],
)
def test_segmentation_bad_input_is_named(registry, kwargs, message) -> None:
    args = {
        "pred": np.zeros((4, 4), int),
        "ref": np.zeros((4, 4), int),
        "spacing": (1.0, 1.0),
        "regions": {"x": (1,)},
    }
    args.update(kwargs)
    with pytest.raises(MetricInputError, match=message):
        suite.score_segmentation_case(**args)


# -- summarize -------------------------------------------------------------------------
def test_summarize_means_stds_and_empty_counts(registry) -> None:
    ref = np.zeros((12, 12), np.int64)
    ref[3:8, 3:8] = 1
    good = np.roll(ref, 1, axis=0)
    empty = np.zeros_like(ref)
    regions = {"lesion": (1,)}
    rows = [
        suite.score_segmentation_case(p, r, (1.0, 1.0), regions)
        for p, r in ((ref, ref), (good, ref), (empty, ref), (empty, empty))
    ]
    table = pd.DataFrame(rows)
    table.insert(0, "case_id", ["a", "b", "c", "d"])
    summary = summary_mod.summarize(table)
    dice = [1.0, sm.compute_dice(good, ref), 0.0, 1.0]
    assert summary["n_cases"] == 4
    assert summary["dice_lesion"] == pytest.approx(np.mean(dice))
    assert summary["dice_lesion_std"] == pytest.approx(np.std(dice, ddof=1))
    assert summary["hd95_lesion"] == pytest.approx((0 + 1 + math.hypot(12, 12) + 0) / 4)
    assert summary["n_ref_empty_lesion"] == 1
    assert summary["n_pred_empty_lesion"] == 2
    assert summary["n_both_empty_lesion"] == 1
    assert "ref_empty_lesion" not in summary and "case_id" not in summary
    assert all(math.isfinite(v) for v in summary.values())


def test_summarize_single_case_and_missing_values() -> None:
    table = pd.DataFrame({"case_id": ["x", "y"], "psnr": [20.0, 30.0], "ms-ssim": [0.9, None]})
    summary = summary_mod.summarize(table)
    assert summary["psnr"] == 25.0 and summary["ms-ssim"] == pytest.approx(0.9)
    assert summary["ms-ssim_std"] == 0.0
    assert summary_mod.summarize(pd.DataFrame({"a": [np.nan]})) == {"n_cases": 1.0}


def test_no_warning_on_large_images(registry, images) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        suite.score_fusion_case(*images)


def test_fusion_metrics_share_the_ssim_pyramid_and_sobel_terms(registry, images, monkeypatch):
    calls = {"pyramid": 0, "sobel": 0}
    pyramid, sobel = fm._source_pyramid, fm.sobel_polar

    def count_pyramid(*args):
        calls["pyramid"] += 1
        return pyramid(*args)

    def count_sobel(*args):
        calls["sobel"] += 1
        return sobel(*args)

    monkeypatch.setattr(fm, "_source_pyramid", count_pyramid)
    monkeypatch.setattr(fm, "sobel_polar", count_sobel)
    row = suite.score_fusion_case(*images)
    strips = len(list(row_strips(images[0].shape[0])))
    assert strips > 1
    # F, A and B in one stack, one call per strip of rows, for Qabf and Nabf together.
    assert calls == {"pyramid": 1, "sobel": strips}
    alone = fm.compute_ssim(*images)["mean"], fm.compute_ms_ssim(*images)
    assert (row["ssim_mean"], row["ms-ssim"]) == alone
    assert (row["qabf"], row["nabf"]) == (fm.compute_qabf(*images), fm.compute_nabf(*images))


# -- regions ---------------------------------------------------------------------------
class RegionPresets:
    """Region presets as a package would register them."""

    __name__ = "region-presets"

    @staticmethod
    @hookimpl
    def register_regions(register):
        register("kidney", lambda: {"kidney": [1, 2], "tumour": (2,)}, description="KiTS")
        register("broken", lambda: {"a b": (1,)}, description="An invalid region name")


def test_parse_regions() -> None:
    presets = create_registry([RegionPresets], entry_points=False, strict=True)
    assert suite.parse_regions() is None
    assert suite.parse_regions("1, 2") == {"label1": (1,), "label2": (2,)}
    assert suite.parse_regions("4", ["core=1,3,4"]) == {"label4": (4,), "core": (1, 3, 4)}
    kidney = {"kidney": (1, 2), "tumour": (2,)}
    assert suite.parse_regions(None, [" Kidney "], presets) == kidney
    assert suite.parse_regions("3", ["kidney"], presets) == {"label3": (3,), **kidney}
    for bad, message in [
        (
            (None, ["core"]),
            r"--region 'core': expected NAME=LABEL.* region preset \(broken, kidney;",
        ),
        ((None, ["kidny"]), r"--region 'kidny': did you mean 'kidney'\? expected NAME=LABEL"),
        ((None, ["=1"]), "expected NAME=LABEL"),
        ((None, ["core=a"]), "comma-separated integers"),
        (("1", ["label1=1"]), "given twice"),
        ((None, ["kidney", "kidney=1"]), "region 'kidney' is given twice"),
        ((None, ["a b=1"]), "region name 'a b'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            suite.parse_regions(*bad, registry=presets)


def test_a_preset_with_invalid_regions_is_its_plugins_bug() -> None:
    presets = create_registry([RegionPresets], entry_points=False, strict=True)
    with pytest.raises(
        PluginBugError,
        match=r"^region preset 'broken' of plugin RegionPresets is invalid: region name 'a b'",
    ):
        suite.region_preset("broken", presets)


def test_without_presets_the_error_says_none_is_registered() -> None:
    empty = create_registry([], entry_points=False, strict=True)
    with pytest.raises(ConfigError, match=r"region preset \(none is registered"):
        suite.parse_regions(None, ["brats"], empty)
