"""``benchbox bench``: row fields, images/s from a known clock, OOM retry, the subprocess
grid with a failing combination, and bad input as one line."""

from __future__ import annotations

import csv
import itertools
import json
import types

import pytest
import torch

from benchbox import bench as bb
from benchbox import hookimpl
from benchbox.bench import grid as bench_grid
from benchbox.cli import main
from benchbox.errors import ConfigError
from benchbox.hooks.manager import create_registry

TINY = {"image_size": 32, "batch_size": 2, "warmup": 1, "steps": 2}
SMALL = {"width": 4, "depth": 2}


def _registry(**hooks):
    return create_registry([types.SimpleNamespace(__name__="bench-test-plugin", **hooks)])


class BatchLimitedSegmenter(torch.nn.Module):
    """A segmenter that runs out of memory above ``limit`` images per batch."""

    def __init__(self, in_channels: int, num_classes: int, limit: int = 2) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # FLOPs are counted on one image under no_grad: that pass is let through.
        counting_flops = not torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        if x.shape[0] > self.limit and not counting_flops:
            raise torch.OutOfMemoryError(f"fake: cannot allocate a batch of {x.shape[0]}")
        return self.conv(x)


def test_row_fields_and_images_per_second_from_a_known_clock():
    ticks = itertools.count()  # every clock reading advances one second
    spec = bb.BenchSpec.make(
        fusion="dual", seg="attunet", **TINY, fusion_opts=SMALL, seg_opts=SMALL, device="cpu"
    )
    row = bb.bench(spec, clock=lambda: float(next(ticks)))
    # each timed step spans exactly one second: images/s = batch * steps / (steps * 1 s)
    for phase in ("train", "infer"):
        assert row[f"{phase}_img_s"] == 2 * 2 / 2.0
        assert row[f"{phase}_step_ms_mean"] == row[f"{phase}_step_ms_p95"] == 1000.0
        assert row[f"{phase}_batch_size"] == 2
        assert row[f"{phase}_warmup_s"] == 1.0
        assert row[f"{phase}_peak_mem_mb"] >= 0
    assert row["precision"] == "float32" and row["channels_last"] is False
    assert row["fusion"] == "dual" and row["segmenter"] == "attunet"
    assert row["device_type"] == "cpu" and row["device"] not in ("", "cpu")
    assert row["threads"] == torch.get_num_threads()
    assert row["torch_version"] == torch.__version__
    assert row["fusion_params"] > 0 and row["seg_gflops"] > 0
    assert row["note"] == ""


def test_real_clock_gives_images_per_second_of_the_step_times():
    spec = bb.BenchSpec.make(
        fusion="mean", seg="attunet", **TINY, seg_opts=SMALL, device="cpu", mode="train"
    )
    row = bb.bench(spec)
    assert "infer_img_s" not in row
    assert row["train_img_s"] == pytest.approx(2 / (row["train_step_ms_mean"] / 1000))


def test_out_of_memory_retries_with_smaller_batches():
    @hookimpl
    def register_segmenters(register):
        register("limited", BatchLimitedSegmenter)

    spec = bb.BenchSpec.make(
        fusion="none", seg="limited", **{**TINY, "batch_size": 8}, device="cpu"
    )
    row = bb.bench(spec, registry=_registry(register_segmenters=register_segmenters))
    assert row["train_batch_size"] == row["infer_batch_size"] == 2
    assert row["requested_batch_size"] == 8
    assert "infer: out of memory at batch 8, retried at 4" in row["note"]
    assert "train: out of memory at batch 4, retried at 2" in row["note"]


def test_out_of_memory_at_batch_one_is_a_clear_error():
    @hookimpl
    def register_segmenters(register):
        def never_fits(in_channels: int, num_classes: int) -> BatchLimitedSegmenter:
            return BatchLimitedSegmenter(in_channels, num_classes, limit=0)

        register("limited", never_fits)

    spec = bb.BenchSpec.make(fusion="none", seg="limited", **TINY, device="cpu", mode="train")
    with pytest.raises(ConfigError, match="out of memory even at batch 1"):
        bb.bench(spec, registry=_registry(register_segmenters=register_segmenters))


def test_classic_fusion_only_has_nothing_to_train():
    spec = bb.BenchSpec.make(fusion="mean", seg="none", **TINY, device="cpu")
    row = bb.bench(spec)
    assert "train_img_s" not in row and row["infer_img_s"] > 0
    assert row["note"] == "train: no trainable parameters"


FAILING_PLUGIN = """
import torch
from benchbox import hookimpl


class Boom(torch.nn.Module):
    def __init__(self, in_channels, num_classes, **params):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x):
        raise RuntimeError("boom: this segmenter always fails")


@hookimpl
def register_segmenters(register):
    register("boom", Boom)
"""


@pytest.mark.integration
def test_grid_runs_each_pair_in_a_subprocess_and_reports_the_failing_one(
    tmp_path, monkeypatch, capsys
):
    site = tmp_path / "site"
    (site / "bb_boom").mkdir(parents=True)
    (site / "bb_boom" / "__init__.py").write_text(FAILING_PLUGIN)
    info = site / "bb_boom-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bb-boom\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[benchbox]\nboom = bb_boom\n")
    monkeypatch.syspath_prepend(str(site))  # this process checks the names ...
    monkeypatch.setenv("PYTHONPATH", str(site))  # ... and the children import it
    from benchbox.hooks import manager as plugins

    monkeypatch.setattr(plugins, "_current", None)  # reloaded with the new entry point
    args = ["bench", "--fusion", "mean", "--seg", "attunet,boom", "--seg-opt", "width=4"]
    args += ["--seg-opt", "depth=2", "--image-size", "32", "--batch-size", "2"]
    args += ["--warmup", "1", "--steps", "2", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "mean + attunet: done" in captured.out
    assert "boom: this segmenter always fails" in captured.err
    with open(tmp_path / "leaderboards" / "throughput-cpu.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["fusion"], r["segmenter"]) for r in rows] == [("mean", "attunet")]
    assert float(rows[0]["train_img_s"]) > 0 and rows[0]["device"]


def test_child_reports_a_user_error_as_one_line(capsys):
    spec = bb.BenchSpec.make(fusion="mean", seg="attunet").to_dict()
    spec["config"]["batch_size"] = 0
    assert bench_grid._child([json.dumps(spec)]) == 2
    assert capsys.readouterr().out.startswith("--error batch_size must be >= 1, got 0")


@pytest.mark.integration
def test_grid_times_out_honestly(monkeypatch):
    import subprocess

    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(bench_grid.subprocess, "run", slow)
    outcome = bench_grid.run_one(bb.BenchSpec(), timeout=5)
    assert outcome.row is None and outcome.error == "timed out after 5 s"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--seg", "atunet"], "atunet"),
        (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
        (["--steps", "0"], "steps must be >= 1, got 0"),
        (["--loss-opt", "alpah=0.5"], "loss 'hybrid' has no parameter 'alpah'"),
        (["--image-size", "48"], "image_size must be a multiple of 32"),
        (["--fusion", "none", "--seg", "none"], "leave nothing to run"),
        (["--fusion", ","], "--fusion names no model"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, args, match):
    with pytest.raises(SystemExit) as info:
        main(["bench", *args, "--out", str(tmp_path)])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and match in err, err
    assert not (tmp_path / "leaderboards").exists()


def test_the_training_step_is_the_runs_step_with_the_loss_options(monkeypatch):
    """bench times one step of the run's main stage: the joint step of
    benchbox.engine.schedule with the loss built with its --loss-opt options, and the
    run's optimiser (AdamW at --lr with its warm-up schedule)."""
    from benchbox.engine import schedule, train

    built: list[dict] = []
    steps: list[str] = []
    lrs: list[float] = []

    class ScaledDice(torch.nn.Module):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            built.append({"scale": scale})
            self.scale = scale

        def forward(self, logits, target):
            return self.scale * logits.float().softmax(1)[:, 1].mean()

    @hookimpl
    def register_losses(register):
        register("scaled", ScaledDice, task="segmentation")

    real_joint, real_opt = schedule.joint_step, train.Optimizer

    def joint_spy(*args, **kwargs):
        steps.append("joint")
        return real_joint(*args, **kwargs)

    class OptimizerSpy(real_opt):  # type: ignore[misc,valid-type]
        def step(self, loss):
            lrs.append(self.lr)
            super().step(loss)

    monkeypatch.setattr(schedule, "joint_step", joint_spy)
    monkeypatch.setattr(train, "Optimizer", OptimizerSpy)
    spec = bb.BenchSpec.make(
        fusion="mean", seg="attunet", **TINY, seg_opts=SMALL, device="cpu", mode="train",
        loss="scaled", loss_opts={"scale": 3.0}, lr=0.01, warmup_steps=2,
    )  # fmt: skip
    row = bb.bench(spec, registry=_registry(register_losses=register_losses))
    assert row["train_img_s"] > 0
    assert steps == ["joint"] and built == [{"scale": 3.0}]
    assert lrs[0] == pytest.approx(0.01 / 3) and lrs[1] == pytest.approx(0.01 * 2 / 3)


CPU_ALLOCATOR_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.integration
def test_an_image_too_big_for_memory_is_one_line_for_one_pair(tmp_path, capsys, monkeypatch):
    # Before: `bench --image-size 100000` for one pair gave the allocator's traceback.
    from benchbox.metrics import flops

    def allocate(*_args, **_kwargs):
        raise RuntimeError(CPU_ALLOCATOR_FAILURE)

    monkeypatch.setattr(flops, "count_flops", allocate)
    with pytest.raises(SystemExit) as info:
        main(["bench", "--image-size", "64", "--out", str(tmp_path)])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "error: out of memory while profiling the models at 64x64 px (37.3 GiB asked for at "
        "once); try a smaller --image-size"
    )
    assert not (tmp_path / "leaderboards").exists()


def test_the_cpu_allocators_failure_in_a_plugins_forward_is_retried_too():
    class CpuLimited(BatchLimitedSegmenter):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > self.limit and torch.is_grad_enabled():
                raise RuntimeError(CPU_ALLOCATOR_FAILURE)
            return self.conv(x)

    @hookimpl
    def register_segmenters(register):
        register("limited", CpuLimited)

    spec = bb.BenchSpec.make(
        fusion="none", seg="limited", **{**TINY, "batch_size": 4}, mode="train", device="cpu"
    )
    row = bb.bench(spec, registry=_registry(register_segmenters=register_segmenters))
    assert row["train_batch_size"] == 2
    assert "train: out of memory at batch 4, retried at 2" in row["note"]
