"""`benchbox export` on a tiny trained run: parity with eager models rebuilt by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbox import config as cfg
from benchbox import errors, get_fusion, get_segmenter
from benchbox.cli import main
from benchbox.data.synthetic import SyntheticDataset
from benchbox.engine import runner
from benchbox.records import rundir
from benchbox.testing import tiny_run_settings

pytest.importorskip("onnxruntime")

TINY = tiny_run_settings()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export-run")
    return runner.run(cfg.resolve(None, None, {**TINY, "out": str(out)})).run_dir


def _by_hand(run_dir: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The run's models rebuilt without benchbox.engine.restore: an independent reference."""
    state = rundir.load_checkpoint(run_dir / "checkpoint.pt")
    fusion = get_fusion("dual", width=4, depth=2)
    segmenter = get_segmenter("attunet", 1, 2, width=4, depth=2)
    fusion.load_state_dict(state["fusion"])
    segmenter.load_state_dict(state["segmenter"])
    return fusion.eval(), segmenter.eval()


def _test_sources(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    test = SyntheticDataset(image_size=32, n_train=8, n_val=2, n_test=4).split("test")
    a = np.stack([test[i]["a"].numpy() for i in range(n)])
    b = np.stack([test[i]["b"].numpy() for i in range(n)])
    return a, b


@pytest.mark.integration
def test_onnx_export_matches_eager_and_reports_it(tiny_run, tmp_path, capsys):
    import onnxruntime as ort

    out = tmp_path / "onnx"
    args = ["export", str(tiny_run), "--out", str(out), "--rounds", "1", "--test-images", "4"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "max |onnxruntime - eager|" in printed and "img/s" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["export.json", "fusion.onnx", "pipeline.onnx", "segmenter.onnx"]

    fusion, segmenter = _by_hand(tiny_run)
    a, b = _test_sources()
    with torch.no_grad():
        fused = fusion(torch.from_numpy(a), torch.from_numpy(b))
        logits = segmenter(fused)
    session = ort.InferenceSession(str(out / "pipeline.onnx"), providers=["CPUExecutionProvider"])
    got_fused, got_logits = session.run(None, {"a": a, "b": b})
    assert np.abs(got_fused - fused.numpy()).max() <= 1e-4
    assert np.abs(got_logits - logits.numpy()).max() <= 1e-4

    # Dynamic batch and spatial size: another batch and size run and agree too.
    a2, b2 = np.random.default_rng(0).random((2, 3, 1, 64, 96), dtype=np.float32)
    with torch.no_grad():
        ref = segmenter(fusion(torch.from_numpy(a2), torch.from_numpy(b2))).numpy()
    assert np.abs(session.run(None, {"a": a2, "b": b2})[1] - ref).max() <= 1e-4

    report = json.loads((out / "export.json").read_text())
    assert [g["graph"] for g in report["graphs"]] == ["pipeline", "fusion", "segmenter"]
    assert report["graphs"][0]["axes"] == "batch+size"
    # The reported difference is the one measured here, to float32 rounding.
    measured = max(
        np.abs(got_fused - fused.numpy()).max(), np.abs(got_logits - logits.numpy()).max()
    )
    assert report["max_abs_diff"] == pytest.approx(measured, abs=1e-6)
    assert set(report["speed"]["images_per_s"]) == {"eager", "onnx"}
    assert report["postprocess"] == "none" and "post-processes" not in printed
    assert report["tta"] == "none" and "--tta" not in printed


@pytest.mark.integration
def test_export_says_what_the_run_does_outside_the_graph(tiny_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    outside = {"postprocess": "largest", "tta": "flip"}
    (run_dir / "config.json").write_text(json.dumps({**config, **outside}))
    args = ["export", str(run_dir), "--format", "torchscript", "--out", str(tmp_path / "ts")]
    assert main([*args, "--rounds", "1", "--test-images", "2"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "post-processes its labels (largest)" in printed
    assert "scored with --tta flip; the graphs are one pass" in printed
    report = json.loads((tmp_path / "ts" / "export.json").read_text())
    assert {k: report[k] for k in outside} == outside


@pytest.mark.integration
def test_torchscript_export_matches_eager(tiny_run, tmp_path):
    from benchbox.deploy.export import export_run

    report = export_run(tiny_run, "torchscript", out=tmp_path, rounds=1, test_images=4)
    assert report.max_abs_diff <= 1e-4
    fusion, segmenter = _by_hand(tiny_run)
    pipeline = torch.jit.load(str(tmp_path / "pipeline.pt"))
    a, b = (torch.from_numpy(x) for x in _test_sources())
    with torch.no_grad():
        fused, logits = pipeline(a, b)
        assert torch.allclose(fused, fusion(a, b), atol=1e-4)
        assert torch.allclose(logits, segmenter(fusion(a, b)), atol=1e-4)


@pytest.mark.integration
def test_int8_quantisation_reports_metric_change_against_the_runs_own_scores(tiny_run, tmp_path):
    from benchbox.deploy.export import export_run

    report = export_run(tiny_run, out=tmp_path, quantize="int8", rounds=1, test_images=4)
    q = report.quantized
    assert q is not None and (tmp_path / "pipeline.int8.onnx").is_file()
    recorded = json.loads((tiny_run / "metrics.json").read_text())["summary"]
    # Eager scores recomputed by export equal those the run recorded at training time.
    for key, value in q["metrics"]["eager"].items():
        assert value == pytest.approx(recorded[key], abs=1e-6), key
    assert {"dice_lesion", "ssim_mean", "qabf"} <= set(q["metrics"]["change"])
    for key, delta in q["metrics"]["change"].items():
        assert delta == pytest.approx(q["metrics"]["int8"][key] - q["metrics"]["eager"][key])
    # int8 changes the outputs, but only by a quantisation step or so.
    assert 0 < q["max_abs_diff"]["fused"] < 0.2


def test_a_model_that_cannot_be_exported_names_the_operator(tmp_path, capfd):
    from benchbox.deploy.graphs import ExportError, Graph, export_graph

    class SvdFusion(torch.nn.Module):
        def forward(self, a, b):
            return torch.linalg.svd(a)[0] * 0 + b

    graph = Graph("fusion", SvdFusion(), ("a", "b"), ("fused",), (1, 1))
    with pytest.raises(ExportError, match=r"fusion 'svd'.*aten::linalg_svd"):
        export_graph(graph, "onnx", tmp_path / "f.onnx", 32, what="fusion 'svd'")
    # The exporter's own dump of the graph (hundreds of lines) stays off the console.
    assert capfd.readouterr() == ("", "")


class NumpyFusion(torch.nn.Module):
    """A plugin's fusion that builds its weights with numpy in ``forward``: the trace
    keeps them as a constant of the traced shape."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        weight = torch.from_numpy(np.full(tuple(a.shape), 0.5, np.float32))
        return a * weight + b * (1 - weight)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_graph_that_keeps_its_trace_shape_is_refused_naming_it(tmp_path, fmt, capfd):
    # Before: exported with static shapes, then a 40-80 line traceback from the
    # parity check on the test images (batch 4 against the traced 2).
    from benchbox.deploy.graphs import ExportError, Graph, export_graph

    graph = Graph("fusion", NumpyFusion(), ("a", "b"), ("fused",), (1, 1))
    with pytest.raises(ExportError) as info:
        export_graph(graph, fmt, tmp_path / "f", 32, what="fusion 'numpy'")
    assert str(info.value) == (
        f"fusion (fusion 'numpy') cannot be exported to {fmt}: its graph keeps the shape it "
        "was traced at (batch 2, 32x32) and fails at batch 3; a value its forward computes "
        "outside torch (with numpy, or from a tensor's shape) became a constant: build it "
        "with torch operations"
    )
    assert capfd.readouterr() == ("", "")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--opset", "3"], "--opset 3 is not one the legacy ONNX exporter of this PyTorch "),
        (["--opset", "99", "--exporter", "dynamo"], "--opset 99 is not one the dynamo ONNX"),
        (["--rounds", "0"], "--rounds must be at least 1, got 0"),
        (["--test-images", "0"], "--test-images must be at least 1, got 0"),
    ],
)
def test_bad_options_stop_before_any_work(tiny_run, tmp_path, capsys, args, message):
    # Before: --opset 3 printed ~560 lines of graph and left an empty export folder.
    out = tmp_path / "export"
    with pytest.raises(SystemExit) as info:
        main(["export", str(tiny_run), "--out", str(out), *args])
    assert info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {message}")
    assert len(captured.err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.integration
def test_bad_runs_and_missing_extra_fail_with_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit):
        main(["export", str(empty)])
    err = capsys.readouterr().err
    assert "not a finished run, no config.json or checkpoint.pt" in err and "Traceback" not in err

    moved = tmp_path / "other"
    shutil.copytree(tiny_run, moved)
    record = json.loads((moved / "config.json").read_text())
    record["fusion"], record["seg"] = "wavelet-gan", "nnformer"
    (moved / "config.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit):
        main(["export", str(moved)])
    err = capsys.readouterr().err
    assert "fusion 'wavelet-gan', segmenter 'nnformer'" in err and len(err.splitlines()) <= 2

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    with pytest.raises(errors.ConfigError, match=r'pip install "benchbox\[export\]"'):
        from benchbox.deploy.export import export_run

        export_run(tiny_run, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_a_failed_export_writes_nothing(tiny_run, tmp_path, monkeypatch):
    from benchbox.deploy import graphs
    from benchbox.deploy.export import export_run

    calls = []
    real = graphs.export_graph

    def fail_second(graph, *args, **kwargs):
        calls.append(graph.name)
        if len(calls) == 2:
            raise graphs.ExportError("fusion cannot be exported: operator aten::x")
        return real(graph, *args, **kwargs)

    monkeypatch.setattr("benchbox.deploy.export.export_graph", fail_second)
    out = tmp_path / "out"
    with pytest.raises(graphs.ExportError):
        export_run(tiny_run, out=out, rounds=1, test_images=4)
    assert not out.exists()  # not even the folder it would have made


def test_dynamo_exporter_gives_the_same_fused_image(tmp_path):
    import onnxruntime as ort

    from benchbox.deploy.graphs import Graph, export_graph

    fusion = get_fusion("dual", width=4, depth=2).eval()
    graph = Graph("fusion", fusion, ("a", "b"), ("fused",), (1, 1))
    item = export_graph(graph, "onnx", tmp_path / "f.onnx", 32, opset=18, exporter="dynamo")
    assert item.axes in ("batch+size", "batch")
    a, b = _test_sources()
    session = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = fusion(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.abs(session.run(None, {"a": a, "b": b})[0] - expected).max() <= 1e-4
