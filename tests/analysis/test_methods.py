"""Grouping leaderboard rows into methods and replicates: once, for every table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchbox.analysis.methods import group, method_table
from benchbox.records import leaderboard

REFERENCE = Path(__file__).resolve().parents[2] / "leaderboards" / "reference"


def _board(rows):
    return pd.DataFrame(rows)


def test_runs_of_a_method_over_seeds():
    board = _board(
        [{"run_id": f"a{s}", "fusion": "dual", "seed": s, "dice": d} for s, d in
         enumerate([0.8, 0.9, 1.0])]
        + [{"run_id": "m0", "fusion": "mean", "seed": 0, "dice": 0.5}]
    )  # fmt: skip
    table = method_table(board, ["fusion"], ["dice"])
    assert table["fusion"].tolist() == ["dual", "mean"]
    assert table["n"].tolist() == [3, 1] and table["runs"].tolist() == [3, 1]
    assert table["dice"].tolist() == pytest.approx([0.9, 0.5])
    assert table["dice_std"].tolist() == pytest.approx([0.1, 0.0])
    with pytest.raises(Exception, match="no metric 'hd95'"):
        method_table(board, ["fusion"], ["hd95"])


def test_the_fold_runs_of_a_seed_are_one_replicate_weighted_by_their_cases():
    """Two seeds of 2-fold cross-validation: each seed's value is the mean over every
    case it scored (fold 1 holds 3 cases, fold 2 one), speed an unweighted mean."""
    board = _board(
        [
            {"run_id": "s0f1", "fusion": "dual", "seed": 0, "fold": "1/2", "n_cases": 3,
             "dice": 0.8, "train_img_s": 10.0},
            {"run_id": "s0f2", "fusion": "dual", "seed": 0, "fold": "2/2", "n_cases": 1,
             "dice": 0.4, "train_img_s": 20.0},
            {"run_id": "s1f1", "fusion": "dual", "seed": 1, "fold": "1/2", "n_cases": 3,
             "dice": 0.6, "train_img_s": 10.0},
            {"run_id": "s1f2", "fusion": "dual", "seed": 1, "fold": "2/2", "n_cases": 1,
             "dice": 0.6, "train_img_s": 30.0},
        ]
    )  # fmt: skip
    (method,) = group(board, ["fusion"], [])
    assert method.replicates == [["s0f1", "s0f2"], ["s1f1", "s1f2"]]
    (row,) = method_table(board, ["fusion"], ["dice", "train_img_s"]).to_dict("records")
    assert (row["n"], row["runs"]) == (2, 4)
    assert row["dice"] == pytest.approx((0.7 + 0.6) / 2)  # (3*0.8+0.4)/4 and 0.6
    assert row["dice_std"] == pytest.approx(pd.Series([0.7, 0.6]).std())
    assert row["train_img_s"] == pytest.approx((15 + 20) / 2)


@pytest.mark.parametrize("name", ["brats2015", "synthetic"])
def test_leaderboard_and_compare_count_the_same_seeds_on_the_reference(name):
    """On the BraTS reference (4 folds x 3 seeds) both tables count 3 seeds per method,
    not 12 runs; a leaderboard without folds counts its runs."""
    from benchbox.analysis.compare import compare

    path = REFERENCE / f"{name}.csv"
    board = leaderboard.read(path)
    table = method_table(board, ["fusion", "segmenter"])
    metric = "dice_whole-tumour" if name == "brats2015" else "dice_lesion"
    result = compare(path, metric=metric, by=["fusion", "segmenter"])
    seeds = {m: n for m, n in zip(result.methods, result.seeds, strict=True)}
    for _, row in table.iterrows():
        assert row["n"] == seeds[f"{row['fusion']} / {row['segmenter']}"]
    if name == "brats2015":
        assert set(table["n"]) == {3} and set(table["runs"]) == {12}


def test_a_grouping_column_is_not_also_a_metric():
    """`leaderboard --by seg_params -m seg_params` printed pandas Series text as the
    method's name; it is one line instead."""
    from benchbox.errors import ConfigError

    board = _board([{"run_id": "a", "seg_params": 10, "seed": 0, "dice": 0.5}])
    with pytest.raises(ConfigError, match=r"'seg_params' groups the methods \(--by\)"):
        method_table(board, ["seg_params"], ["seg_params"])
