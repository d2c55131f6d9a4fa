"""Post-processing of predicted labels: the largest component, and its choice on val."""

from __future__ import annotations

import numpy as np
import pytest

from benchbox.engine import postprocess as post
from benchbox.engine.selection import Objective


def test_keep_largest_keeps_each_class_s_largest_component_analytic():
    labels = np.zeros((10, 10), np.int64)
    labels[0:2, 0:2] = 1  # 4 px island of class 1
    labels[5:8, 5:8] = 1  # 9 px: kept
    labels[9, 9] = 1  # touches the 9 px block only through a corner: full connectivity
    labels[8, 8] = 1  # (joins it via (8, 8))
    labels[0, 9] = 2  # class 2: one pixel, its only component, kept
    out = post.keep_largest(labels)
    expected = labels.copy()
    expected[0:2, 0:2] = 0
    assert np.array_equal(out, expected)
    assert out.dtype == labels.dtype


def test_keep_largest_in_3d_and_on_empty_labels():
    labels = np.zeros((5, 6, 6), np.uint8)
    labels[0, 0, 0] = 1
    labels[2:5, 2:5, 2:5] = 1
    labels[4, 0, 5] = 1
    out = post.keep_largest(labels)
    assert out.sum() == 27 and out[0, 0, 0] == 0 and out[4, 0, 5] == 0
    empty = np.zeros((3, 4, 4), np.int64)
    assert np.array_equal(post.keep_largest(empty), empty)


@pytest.mark.parametrize("shape", [(24, 24), (8, 16, 16)])
def test_keep_largest_agrees_with_monai(shape):
    monai = pytest.importorskip("monai.transforms")
    import torch
    from scipy import ndimage

    def largest_is_unique(labels: np.ndarray) -> bool:
        for value in (1, 2):
            components, _ = ndimage.label(labels == value, structure=np.ones((3,) * labels.ndim))
            sizes = np.sort(np.bincount(components.ravel())[1:])
            if len(sizes) > 1 and sizes[-1] == sizes[-2]:
                return False
        return True

    rng = np.random.default_rng(0)
    checked = 0
    while checked < 5:
        # Sparse random classes 0..2 give many islands, some touching diagonally.
        labels = np.where(rng.random(shape) < 0.3, rng.integers(1, 3, shape), 0).astype(np.int64)
        if not largest_is_unique(labels):
            continue  # which of two equal largest islands is kept is each tool's own rule
        ours = post.keep_largest(labels)
        theirs = monai.KeepLargestConnectedComponent(applied_labels=[1, 2], independent=True)(
            torch.from_numpy(labels.copy())[None]  # MONAI may edit its input in place
        )[0]
        assert np.array_equal(ours, np.asarray(theirs)), checked
        assert not np.array_equal(ours, labels)  # islands were removed: not a trivial case
        checked += 1


def test_postprocessor_names():
    assert post.postprocessor("none") is None
    assert post.postprocessor("largest") is post.keep_largest
    with pytest.raises(ValueError, match="unknown post-processing 'biggest'"):
        post.postprocessor("biggest")


def _scores(raw: dict[str, float], largest: dict[str, float]):
    calls = []

    def validate(fn):
        calls.append(fn)
        return raw if fn is None else largest

    return validate, calls


def test_choose_auto_takes_what_scores_better_on_val_by_the_selection_metric():
    validate, calls = _scores({"dice": 0.70, "hd95": 40.0}, {"dice": 0.72, "hd95": 8.0})
    record = post.choose("auto", validate, Objective("dice", True))
    assert calls == [None, post.keep_largest]
    assert record["applied"] == "largest" and record["metric"] == "dice"
    assert record["val"] == {"none": 0.70, "largest": 0.72}
    assert record["val_other"]["largest"] == {"dice": 0.72, "hd95": 8.0}
    # A lower-is-better objective is minimised.
    validate, _ = _scores({"dice": 0.7, "hd95": 8.0}, {"dice": 0.72, "hd95": 9.0})
    record = post.choose("auto", validate, Objective("hd95", False))
    assert (record["applied"], record["mode"]) == ("none", "min")


def test_choose_auto_keeps_none_on_a_tie_and_without_validation():
    validate, _ = _scores({"dice": 0.7}, {"dice": 0.7})
    assert post.choose("auto", validate, Objective("dice", True))["applied"] == "none"
    # A fusion objective of a segmentation run is not a label metric: dice decides.
    validate, _ = _scores({"dice": 0.6, "qabf": 0.5}, {"dice": 0.65, "qabf": 0.5})
    record = post.choose("auto", validate, Objective("loss", False))
    assert (record["applied"], record["metric"]) == ("largest", "dice")
    record = post.choose("auto", None, None)
    assert record["applied"] == "none" and "no validation split" in record["note"]


def test_choose_passes_fixed_choices_through_without_validating():
    validate, calls = _scores({}, {})
    assert post.choose("largest", validate, None)["applied"] == "largest"
    assert post.choose("none", validate, None)["applied"] == "none"
    assert calls == []
