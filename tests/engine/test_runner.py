"""`benchbox run` as a library call, on tiny synthetic data and tiny models."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchbox import config as cfg
from benchbox import errors, hookimpl
from benchbox.data.base import BenchDataset
from benchbox.engine import runner
from benchbox.hooks.manager import create_registry, use_registry
from benchbox.records import leaderboard, rundir
from benchbox.scoring import examples
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(examples=2)


def tiny(out: Path, **overrides) -> cfg.RunConfig:
    return cfg.resolve(None, None, {**TINY, "out": str(out), **overrides})


def metric_values(result: runner.RunResult) -> dict[str, float]:
    return dict(result.summary)


@pytest.mark.integration
def test_joint_run_writes_records_and_one_leaderboard_row(tmp_path):
    result = runner.run(tiny(tmp_path))
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "runs"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "completed" and status["error"] is None

    config = json.loads((run_dir / "config.json").read_text())
    assert config["fusion"] == "dual" and config["seg"] == "attunet" and config["loss"] == "hybrid"
    assert config["lr"] == cfg.resolve().lr  # defaults are recorded too
    assert config["dataset_config"]["n_train"] == 8

    env = json.loads((run_dir / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    assert env["amp"]["mode"] == "off" and env["amp"]["observed_dtype"] == "float32"
    assert "benchbox" in env["plugin_distributions"]
    from threadpoolctl import threadpool_info

    pools: dict[str, int] = {}  # the largest pool of each kind (NumPy and SciPy each bring one)
    for info in threadpool_info():
        pools[info["internal_api"]] = max(pools.get(info["internal_api"], 0), info["num_threads"])
    assert env["native_threads"] == pools and pools

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [s["name"] for s in metrics["stages"]] == ["fusion", "joint"]
    assert metrics["stages"][0]["steps"] == 2 and metrics["stages"][1]["steps"] == 2
    summary = metrics["summary"]
    for key in ("ssim_a", "ssim_b", "ssim_mean", "dice_lesion", "hd95_lesion"):
        assert key in summary
    assert summary["ssim_mean"] == pytest.approx((summary["ssim_a"] + summary["ssim_b"]) / 2)
    assert metrics["throughput"]["train_img_s"] > 0 and metrics["throughput"]["infer_img_s"] > 0
    assert metrics["profile"]["seg_params"] == sum(
        p.numel()
        for p in torch.nn.Module.parameters(
            __import__("benchbox").get_segmenter("attunet", 1, 2, width=4, depth=2)
        )
    )

    per_case = pd.read_csv(run_dir / "per_case.csv")
    assert len(per_case) == 4 and per_case["case_id"].tolist()[0] == "test-00000"
    assert per_case.notna().all().all()

    state = rundir.load_checkpoint(run_dir / "checkpoint.pt")
    assert set(state) == {"fusion", "segmenter"}
    assert all(isinstance(v, torch.Tensor) for v in state["segmenter"].values())
    assert (run_dir / "examples.png").stat().st_size > 0

    board = leaderboard.read(tmp_path / "leaderboards" / "synthetic.csv")
    assert len(board) == 1
    row = board.iloc[0]
    assert row["run_id"] == result.run_id and row["config_hash"] == config["config_hash"]
    assert row["dice_lesion"] == pytest.approx(summary["dice_lesion"], abs=1e-6)
    assert list(board.columns[: len(leaderboard.LEADING)]) == list(leaderboard.LEADING)
    assert row["augment"] == "none" and pd.isna(row["fold"])  # no augmentation, no folds
    # The per-case results travel with the row, keyed by run id.
    cases = leaderboard.read_cases(tmp_path / "leaderboards" / "synthetic.csv")
    assert cases["run_id"].tolist() == [result.run_id] * 4
    assert cases["case_id"].tolist() == per_case["case_id"].tolist()
    assert cases["dice_lesion"].tolist() == pytest.approx(
        per_case["dice_lesion"].tolist(), abs=1e-6
    )


@pytest.mark.integration
def test_same_seed_same_metrics_other_seed_differs(tmp_path):
    timing = ("img_s", "seconds", "wall")
    a = runner.run(tiny(tmp_path / "a", seed=1))
    b = runner.run(tiny(tmp_path / "b", seed=1))
    c = runner.run(tiny(tmp_path / "c", seed=2))
    assert metric_values(a) == metric_values(b)
    assert metric_values(a) != metric_values(c)
    losses = [s["epoch_losses"] for s in a.record["stages"]]
    assert losses == [s["epoch_losses"] for s in b.record["stages"]]
    assert not any(t in k for k in a.summary for t in timing)


@pytest.mark.integration
def test_fusion_only_run(tmp_path):
    result = runner.run(tiny(tmp_path, seg="none", epochs=1))
    assert "ssim_mean" in result.summary and not any("dice" in k for k in result.summary)
    assert [s["name"] for s in result.record["stages"]] == ["fusion"]
    board = leaderboard.read(result.leaderboard)
    assert board.iloc[0]["task"] == "fusion" and pd.isna(board.iloc[0]["segmenter"]) is False


@pytest.mark.integration
def test_the_row_records_the_data_seed(tmp_path):
    # compare pairs cases only within one data seed, so the row must say which it was.
    settings = {"fusion": "mean", "fusion_opts": {}, "seg": "none", "data_seed": 5, "examples": 0}
    board = leaderboard.read(runner.run(tiny(tmp_path, **settings)).leaderboard)
    assert board.iloc[0]["data_seed"] == 5
    assert list(board.columns).index("data_seed") == list(board.columns).index("seed") + 1


@pytest.mark.integration
def test_early_fusion_baseline_stacks_modalities(tmp_path):
    result = runner.run(tiny(tmp_path, fusion="none"))
    assert "dice_lesion" in result.summary and "ssim_mean" not in result.summary
    assert [s["name"] for s in result.record["stages"]] == ["segmentation"]
    state = rundir.load_checkpoint(result.files["checkpoint"])
    first_conv = next(v for k, v in state["segmenter"].items() if v.dim() == 4)
    assert first_conv.shape[1] == 2  # two input channels: the stacked sources


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__="test-plugin", **hooks)


class NaNLoss(torch.nn.Module):
    """A segmentation loss that diverges at once."""

    def forward(self, logits, target):
        return logits.mean() * float("nan")


@pytest.mark.integration
def test_nan_loss_marks_the_run_failed_and_writes_no_row(tmp_path):
    @hookimpl
    def register_losses(register):
        register("nan", NaNLoss, task="segmentation")

    registry = create_registry([_plugin(register_losses=register_losses)])
    with (
        use_registry(registry),
        pytest.raises(errors.TrainingDivergedError, match="joint loss became nan"),
    ):
        runner.run(tiny(tmp_path, loss="nan"), registry=registry)
    [run_dir] = (tmp_path / "runs").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "became nan" in status["error"]
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()


class _Interrupt:
    def start(self, stage, total):
        pass

    def step(self, loss, images, seconds):
        raise KeyboardInterrupt

    def end(self):
        pass


@pytest.mark.integration
def test_ctrl_c_marks_the_run_interrupted_and_writes_no_row(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny(tmp_path), progress=_Interrupt())
    [run_dir] = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "leaderboards" / "synthetic.csv").exists()


class Unlabelled(BenchDataset):
    """Pairs without labels."""

    name = "unlabelled"

    def __init__(self, image_size: int = 32, seed: int = 0):
        self.size = image_size

    def split(self, name):
        return [
            {
                "a": torch.rand(1, self.size, self.size),
                "b": torch.rand(1, self.size, self.size),
                "case_id": f"{name}-{i}",
                "spacing": torch.ones(2, dtype=torch.float64),
            }
            for i in range(4)
        ]


@pytest.mark.integration
def test_segmenter_on_unlabelled_data_fails_before_anything_is_written(tmp_path):
    @hookimpl
    def register_datasets(register):
        register("unlabelled", Unlabelled)

    registry = create_registry([_plugin(register_datasets=register_datasets)])
    with pytest.raises(errors.ConfigError, match=r"has no labels.*--seg none"):
        runner.run(tiny(tmp_path, dataset="unlabelled"), registry=registry)
    assert not list((tmp_path / "runs").iterdir())
    fusion_only = runner.run(tiny(tmp_path, dataset="unlabelled", seg="none"), registry=registry)
    assert fusion_only.leaderboard == tmp_path / "leaderboards" / "unlabelled.csv"


@pytest.mark.integration
def test_unwritable_output_folder_is_reported_first(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(errors.ConfigError, match=r"output folder .* is not writable"):
        runner.run(tiny(blocker / "out"))


@pytest.mark.integration
def test_wrong_loss_task_and_unknown_parameter(tmp_path):
    with pytest.raises(errors.ConfigError, match="--loss 'ssim' is a fusion loss"):
        runner.run(tiny(tmp_path, loss="ssim"))
    with pytest.raises(errors.ConfigError, match="segmenter 'attunet' has no parameter 'widht'"):
        runner.run(tiny(tmp_path, seg_opts={"widht": 4}))
    assert not (tmp_path / "runs").exists()  # checked before anything is written


def test_example_figure_prefers_the_largest_lesions(tmp_path):
    import numpy as np

    from benchbox.data.io import read_image

    picker = examples.ExamplePicker(2)
    zeros = np.zeros((4, 4))
    for area in (1, 0, 5, 3, 0):
        mask = np.zeros((4, 4), np.int64)
        mask.flat[:area] = 1
        picker.offer(zeros, zeros, zeros, mask, mask)
    assert [int(ex["mask"].sum()) for ex in picker.chosen()] == [5, 3]
    none = examples.ExamplePicker(0)  # --examples 0: a lesion offered is simply not kept
    none.offer(zeros, zeros, zeros, np.ones((4, 4), np.int64), zeros)
    assert none.chosen() == []
    path = examples.save_examples(tmp_path / "ex.png", picker.chosen(), ("CT", "MRI"))
    grid = read_image(path).array
    top = examples.TITLE_HEIGHT + 2
    assert grid.shape == (top + 2 * 128 + 2, 5 * 128 + 4 * 2)  # 4 px panels enlarged to 128
    # A title over every column: dark text pixels in the strip above each panel, and the
    # panels themselves start below it (the lesion of the first case is white).
    for column in range(5):
        strip = grid[: examples.TITLE_HEIGHT, column * 130 : column * 130 + 128]
        assert (strip < 100).sum() > 20
    assert grid[top, 3 * 130] == 255 and grid[top - 1, 3 * 130] == 255


def test_the_row_names_the_fold_of_a_cross_validated_dataset():
    def described(**extra):
        return types.SimpleNamespace(config=lambda: {"name": "x", **extra})

    assert runner._fold(described(folds=4, fold=2)) == "2/4"
    assert runner._fold(described()) == ""


@pytest.mark.integration
def test_channels_last_converts_the_models_and_changes_only_float_rounding(
    tmp_path, pinned_threads, equivalent_runs
):
    plain = runner.run(cfg.resolve(None, None, {**TINY, "out": str(tmp_path / "a")}))
    p = runner.prepare(cfg.resolve(None, None, {**TINY, "out": str(tmp_path / "b"),
                                                "channels_last": True}))  # fmt: skip
    convs = [m.weight for m in p.models.segmenter.modules() if isinstance(m, torch.nn.Conv2d)]
    nhwc = [w.is_contiguous(memory_format=torch.channels_last) for w in convs]
    assert all(nhwc) and not all(w.is_contiguous() for w in convs)
    fast = runner.execute(p)
    # How fast, not what: the same experiment hash.
    board = leaderboard.read(fast.leaderboard)
    assert (
        board["config_hash"].iloc[0] == leaderboard.read(plain.leaderboard)["config_hash"].iloc[0]
    )
    # Other kernels sum in another order: continuous results agree to rounding, and a
    # histogram metric or an argmax may move where a pixel sits on a threshold.
    equivalent_runs(plain.run_dir, fast.run_dir)
