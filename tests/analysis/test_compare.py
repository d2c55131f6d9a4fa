"""`benchbox compare`: seed averaging, pairing, refusals and the output formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchbox.analysis import stats
from benchbox.analysis.compare import compare, metric_direction
from benchbox.errors import ConfigError, DataError
from benchbox.records import leaderboard

CASES = [f"c{i:02d}" for i in range(12)]
RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.6, 0.8, len(CASES))


def add_run(path, fusion, seed, dice, cases=CASES, dataset="synthetic", **extra):
    """One leaderboard row with its per-case rows; hd95 is the mirror image of Dice."""
    run_id = f"{fusion}-s{seed}-{dataset}"
    row = {
        "run_id": run_id,
        "dataset": dataset,
        "fusion": fusion,
        "segmenter": "attunet",
        "seed": seed,
        "dice_lesion": float(np.mean(dice)),
        **extra,
    }
    per_case = [
        {"case_id": c, "dice_lesion": float(d), "hd95_lesion": float(10 * (1 - d))}
        for c, d in zip(cases, dice, strict=True)
    ]
    leaderboard.append_row(path, row, cases=per_case)


@pytest.fixture
def board(tmp_path):
    path = tmp_path / "leaderboards" / "synthetic.csv"
    shift = {"dual": 0.1, "mean": 0.0, "max": -0.002}
    noise = np.random.default_rng(1)
    for fusion, delta in shift.items():
        for seed in range(3):
            add_run(path, fusion, seed, BASE + delta + noise.normal(0, 0.01, len(CASES)))
    return path


def test_seeds_are_averaged_per_case_and_their_spread_kept(board):
    c = compare(board, "dice_lesion")
    cases = leaderboard.read_cases(board)
    dual = cases[cases["run_id"].str.startswith("dual")]
    expected = dual.groupby("case_id", sort=False)["dice_lesion"].mean()
    assert c.methods[0] == "dual / attunet"
    assert c.values[0] == pytest.approx(expected.loc[CASES].to_numpy())
    per_run = dual.groupby("run_id", sort=False)["dice_lesion"].mean()
    assert c.seeds[0] == 3
    assert c.seed_sd[0] == pytest.approx(per_run.std(ddof=1))
    assert c.mean[0] == pytest.approx(expected.mean())
    assert c.cases == CASES


def test_pairs_use_paired_wilcoxon_with_holm_and_bootstrap_ci(board):
    c = compare(board, "dice_lesion", resamples=500, seed=3)
    assert [(p["a"], p["b"]) for p in c.pairs] == [
        (c.methods[0], c.methods[1]),
        (c.methods[0], c.methods[2]),
        (c.methods[1], c.methods[2]),
    ]
    raw = [stats.signed_rank(c.values[i], c.values[j]).pvalue for i, j in [(0, 1), (0, 2), (1, 2)]]
    assert [p["p"] for p in c.pairs] == pytest.approx(raw)
    assert [p["p_holm"] for p in c.pairs] == pytest.approx(stats.holm(raw))
    indices = stats.bootstrap_indices(len(CASES), 500, seed=3)
    first = c.pairs[0]
    d = c.values[0] - c.values[1]
    assert first["difference"] == pytest.approx(d.mean())
    assert (first["ci_low"], first["ci_high"]) == pytest.approx(stats.bootstrap_ci(d, indices))
    # dual is better than both on every case: significant, rank-biserial +1.
    assert first["better"] == "dual / attunet" and first["rank_biserial"] == 1.0
    assert c.pairs[2]["better"] is None  # mean vs max: 0.002 apart in noise of 0.01
    assert c.significance_share.tolist() == [1.0, 0.0, 0.0]
    assert c.significance_rank.tolist() == [1, 2, 2]
    assert (c.stability.low[0], c.stability.high[0]) == (1, 1)


def test_lower_is_better_comes_from_the_registry(board):
    assert metric_direction("hd95_lesion") is False
    assert metric_direction("dice_lesion") is True and metric_direction("ssim_mean") is True
    c = compare(board, "hd95_lesion")
    assert c.methods[0] == "dual / attunet" and not c.higher_is_better
    assert c.pairs[0]["difference"] < 0 and c.pairs[0]["better"] == "dual / attunet"
    with pytest.raises(ConfigError, match="direction is unknown"):
        metric_direction("wall_s")


def test_reference_compares_every_method_with_it_only(board):
    c = compare(board, "dice_lesion", reference="mean")
    assert c.reference == "mean / attunet"
    assert [(p["a"], p["b"]) for p in c.pairs] == [
        ("dual / attunet", "mean / attunet"),
        ("max / attunet", "mean / attunet"),
    ]
    raw = [stats.signed_rank(c.values[i], c.values[1]).pvalue for i in (0, 2)]
    assert [p["p_holm"] for p in c.pairs] == pytest.approx(stats.holm(raw))
    with pytest.raises(ConfigError, match="not a method"):
        compare(board, "dice_lesion", reference="nope")
    with pytest.raises(ConfigError, match="matches 3 methods"):
        compare(board, "dice_lesion", reference="attunet")


def test_refuses_methods_scored_on_different_cases(tmp_path):
    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE)
    add_run(path, "mean", 0, BASE[:-1], cases=CASES[:-1])
    message = r"cannot pair .*\(1 case\(s\) only in dual / attunet, e.g. c11\)"
    with pytest.raises(DataError, match=message):
        compare(path, "dice_lesion")


def test_refuses_seeds_scored_on_different_cases(tmp_path):
    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE)
    add_run(path, "dual", 1, BASE[1:], cases=CASES[1:])
    with pytest.raises(DataError, match="runs of dual / attunet were scored on different cases"):
        compare(path, "dice_lesion")


def add_fold_run(path, fusion, seed, fold, cases, dice):
    """One fold of a 3-fold cross-validation: a run scored on that fold's cases only."""
    run_id = f"{fusion}-s{seed}-f{fold}"
    row = {"run_id": run_id, "dataset": "brats", "fusion": fusion, "segmenter": "attunet"}
    row.update(seed=seed, fold=f"{fold}/3", dice_lesion=float(np.mean(dice)))
    per_case = [{"case_id": c, "dice_lesion": float(d)} for c, d in zip(cases, dice, strict=True)]
    leaderboard.append_row(path, row, cases=per_case)
    return run_id


def cross_validated(path, shift, seeds=3):
    """Each method x seed: 3 fold runs whose test cases partition CASES."""
    folds = [CASES[0:4], CASES[4:8], CASES[8:12]]
    noise = np.random.default_rng(2)
    for fusion, delta in shift.items():
        for seed in range(seeds):
            scores = BASE + delta + noise.normal(0, 0.01, len(CASES))
            for f, cases in enumerate(folds):
                add_fold_run(path, fusion, seed, f, cases, scores[4 * f : 4 * f + 4])


def test_cross_validation_folds_of_a_seed_make_one_replicate(tmp_path):
    path = tmp_path / "brats.csv"
    cross_validated(path, {"dual": 0.05, "mean": 0.0})
    c = compare(path, "dice_lesion")
    assert sorted(c.cases) == sorted(CASES)
    assert c.seeds == [3, 3]
    assert len(c.runs[0]) == 9
    assert c.replicates[0][0] == "dual-s0-f0+dual-s0-f1+dual-s0-f2"
    cases = leaderboard.read_cases(path)
    dual = cases[cases["run_id"].str.startswith("dual")]
    expected = dual.groupby("case_id")["dice_lesion"].mean()
    assert c.values[0] == pytest.approx(expected.loc[c.cases].to_numpy())
    # a seed's mean is over every case of its folds; the spread is over those means
    per_seed = dual.assign(seed=dual["run_id"].str[6]).groupby("seed")["dice_lesion"].mean()
    assert c.seed_sd[0] == pytest.approx(per_seed.std(ddof=1))
    assert c.pairs[0]["better"] == "dual / attunet"


def test_cross_validation_refuses_overlapping_or_repeated_folds(tmp_path):
    path = tmp_path / "brats.csv"
    add_fold_run(path, "dual", 0, 0, CASES[:6], BASE[:6])
    add_fold_run(path, "dual", 0, 1, CASES[5:], BASE[5:])
    with pytest.raises(DataError, match="share test case c05: cross-validation folds"):
        compare(path, "dice_lesion")
    path = tmp_path / "again.csv"
    add_fold_run(path, "dual", 0, 0, CASES[:6], BASE[:6])
    leaderboard.append_row(
        path,
        {
            "run_id": "rerun",
            "dataset": "brats",
            "fusion": "dual",
            "segmenter": "attunet",
            "seed": 0,
            "fold": "0/3",
        },
        cases=[{"case_id": c, "dice_lesion": 0.5} for c in CASES[:6]],
    )
    with pytest.raises(DataError, match="runs dual-s0-f0 and rerun are both fold 0/3 of seed 0"):
        compare(path, "dice_lesion")


def test_cross_validation_and_plain_runs_do_not_mix(tmp_path):
    path = tmp_path / "brats.csv"
    add_fold_run(path, "dual", 0, 0, CASES, BASE)
    add_run(path, "dual", 1, BASE, dataset="brats")
    with pytest.raises(DataError, match="mixes cross-validation runs"):
        compare(path, "dice_lesion")


def test_refuses_a_leaderboard_that_mixes_datasets(tmp_path):
    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE)
    add_run(path, "mean", 0, BASE, dataset="other")
    with pytest.raises(DataError, match="mixes datasets other, synthetic"):
        compare(path, "dice_lesion")


def test_warnings_for_few_seeds_mixed_setups_and_runs_without_cases(tmp_path):
    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE, epochs=6)
    add_run(path, "dual", 1, BASE + 0.01, epochs=20)
    add_run(path, "mean", 0, BASE)
    leaderboard.append_row(path, {"run_id": "old", "dataset": "synthetic", "fusion": "max"})
    c = compare(path, "dice_lesion")
    text = "\n".join(c.warnings)
    assert "1 run(s) have no per-case results" in text
    assert "dual / attunet mixes runs with epochs 6, 20;" in text
    assert "mean / attunet: 1 seed(s)" in text
    assert c.methods == ["dual / attunet", "mean / attunet"]


def test_unknown_metric_and_missing_companion(board, tmp_path):
    with pytest.raises(ConfigError, match="did you mean dice_lesion"):
        compare(board, "dice_lesio")
    bare = leaderboard.append_row(tmp_path / "bare.csv", {"run_id": "r", "dataset": "x"})
    with pytest.raises(DataError, match=r"bare\.cases\.csv"):
        compare(bare, "dice_lesion")
    # A per-case file given by mistake names its leaderboard.
    with pytest.raises(
        ConfigError, match=r"per-case file: compare its leaderboard, .*synthetic\.csv$"
    ):
        compare(leaderboard.cases_path(board), "dice_lesion")


def test_cli_formats(board, capsys):
    from benchbox.cli import main

    assert main(["compare", str(board), "-m", "dice_lesion", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["methods"][0]["method"] == "dual / attunet" and len(data["pairs"]) == 3
    assert main(["compare", str(board), "-m", "dice_lesion", "-f", "md"]) == 0
    out = capsys.readouterr().out
    assert "| rank | method | dice_lesion ↑ | 95% CI |" in out
    assert "| dual / attunet | mean / attunet |" in out
    assert main(["compare", str(board), "-m", "hd95_lesion", "-f", "csv", "--table", "pairs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a,b,difference,ci_low,ci_high,p,p_holm")
    assert len(lines) == 4
    assert main(["compare", str(board), "-m", "dice_lesion"]) == 0
    assert "paired differences" in capsys.readouterr().out


def test_cli_errors_are_one_line(board, tmp_path, capsys):
    from benchbox.cli import main

    for args in (
        [str(tmp_path / "missing.csv"), "-m", "dice_lesion"],
        [str(board), "-m", "dice_lesion", "-f", "xml"],
        [str(board), "-m", "nope"],
    ):
        with pytest.raises(SystemExit) as info:
            main(["compare", *args])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err


def test_refuses_to_pair_runs_of_different_data_seeds(tmp_path):
    # Before, runs of --data-seed 0 and 5 were paired case by case: both name their
    # cases test-00000..., yet they are different images.
    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE, data_seed=0)
    add_run(path, "mean", 0, BASE, data_seed=5)
    add_run(path, "max", 0, BASE, data_seed=5)
    with pytest.raises(DataError) as info:
        compare(path, "dice_lesion")
    assert str(info.value) == (
        "cannot pair methods scored on different images: run dual-s0-synthetic (dual / "
        "attunet) has data seed 0 and run mean-s0-synthetic (mean / attunet) has data seed 5 "
        "(a case id such as c00 names a different image under each data seed); compare one "
        "data seed at a time with --data-seed 0"
    )
    assert compare(path, "dice_lesion", data_seed=5).methods == ["mean / attunet", "max / attunet"]
    assert compare(path, "dice_lesion", data_seed=0).methods == ["dual / attunet"]
    with pytest.raises(DataError, match=r"^no run has data seed 3 \(the runs have 0, 5\)$"):
        compare(path, "dice_lesion", data_seed=3)


def test_rows_without_a_data_seed_pair_only_with_each_other(tmp_path):
    """Rows written before the data_seed column (empty cells) are paired by case id among
    themselves, as before, but never with runs whose data seed is recorded."""
    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE + 0.1)
    add_run(path, "mean", 0, BASE)
    assert compare(path, "dice_lesion").methods == ["dual / attunet", "mean / attunet"]
    add_run(path, "max", 0, BASE, data_seed=0)
    with pytest.raises(DataError) as info:
        compare(path, "dice_lesion")
    assert "run max-s0-synthetic (max / attunet) has data seed 0 and run dual-s0-synthetic " in (
        str(info.value)
    )
    assert str(info.value).endswith(
        "(a row older than the column) (a case id such as c00 names a different image under "
        "each data seed); fill in its data_seed cell, or compare one data seed at a time with "
        "--data-seed 0"
    )


def test_a_reference_leaderboard_without_data_seed_still_compares():
    from pathlib import Path

    path = Path(__file__).parents[2] / "leaderboards" / "reference" / "aanlib-ct-mri.csv"
    c = compare(path, "qabf", resamples=50)
    assert len(c.methods) >= 2 and len(c.cases) > 0


def test_a_run_without_the_metric_is_named_and_can_be_left_out(tmp_path, capsys):
    # Before: "no case has a dice_lesion value in every run", no run named, no way out.
    from benchbox.cli import main

    path = tmp_path / "b.csv"
    add_run(path, "dual", 0, BASE + 0.1)
    add_run(path, "mean", 0, BASE)
    leaderboard.append_row(
        path,
        {"run_id": "fusion-only", "dataset": "synthetic", "fusion": "max", "segmenter": "none"},
        cases=[{"case_id": c, "ssim_mean": 0.5} for c in CASES],
    )
    with pytest.raises(SystemExit) as info:
        main(["compare", str(path), "-m", "dice_lesion"])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "error: run fusion-only (max / none) has no dice_lesion value for any case; leave it "
        "out with --exclude fusion-only"
    )
    assert main(["compare", str(path), "-m", "dice_lesion", "--exclude", "fusion-only"]) == 0
    assert "dual / attunet" in capsys.readouterr().out
    with pytest.raises(
        ConfigError,
        match="--exclude fusion-onyl: no such run in the leaderboard; did you mean fusion-only",
    ):
        compare(path, "dice_lesion", exclude=["fusion-onyl"])


def test_several_leaderboards_of_one_dataset_are_compared_as_one(board, tmp_path, capsys):
    # e.g. a 3D reference beside the 2D one: the methods of both, paired case by case
    other = tmp_path / "three_d" / "synthetic.csv"
    for seed in range(3):
        add_run(other, "unet3d", seed, BASE + 0.2)
    c = compare([board, other], "dice_lesion")
    assert c.methods[0] == "unet3d / attunet" and len(c.methods) == 4
    assert c.leaderboard == f"{board} + {other}"
    assert c.values[0] == pytest.approx(BASE + 0.2)
    from benchbox.cli import main

    assert main(["compare", str(board), str(other), "-m", "dice_lesion", "-f", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["methods"]) == 4
    # the same run in both, or two datasets: one clear refusal each
    with pytest.raises(DataError, match=r"run dual-s0-synthetic is in both .* and "):
        compare([board, board], "dice_lesion")
    elsewhere = tmp_path / "other.csv"
    add_run(elsewhere, "dual", 7, BASE, dataset="brats")
    with pytest.raises(DataError, match=r"different datasets \(.*: synthetic, .*: brats\)"):
        compare([board, elsewhere], "dice_lesion")
