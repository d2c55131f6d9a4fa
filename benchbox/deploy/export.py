"""``benchbox export`` as a library call: write a run's graphs, check them, time them.

For a trained run, :func:`export_run` writes the ``pipeline``, ``fusion`` and
``segmenter`` graphs (:mod:`benchbox.deploy.graphs`) to ONNX or TorchScript, runs each back
(onnxruntime or ``torch.jit.load``) on the run's test images and reports the largest
absolute difference to eager PyTorch, then times eager against the exported pipeline
side by side (:func:`benchbox.engine.timing.compare_speed`). With
``quantize="int8"`` it also writes static int8 ONNX graphs (:mod:`benchbox.deploy.quantize`)
and scores the test split with them and with eager PyTorch through the same
evaluation as ``benchbox run``, so the change of Dice, SSIM and Qabf is measured, not
estimated. Files appear in the output folder only when everything succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchbox import errors
from benchbox.deploy.graphs import (
    EXPORTERS,
    FORMATS,
    PARITY_TARGET,
    SUFFIX,
    Exported,
    ExportError,
    Graph,
    eager_runner,
    export_graph,
    first_line,
    graphs,
    load_runner,
    max_abs_diff,
    onnx_runner,
    opset_range,
    require_onnx,
)
from benchbox.records.atomic import StagedFolder

__all__ = ["QUANT_TOP", "ExportReport", "Log", "export_run", "graphs_of"]

Log = Callable[[str], None]
#: The change under quantisation is reported for the metrics registered with a headline
#: place up to this one (SSIM and Qabf; Dice and HD95 for the built-ins).
QUANT_TOP = 2


@dataclass
class ExportReport:
    """What :func:`export_run` wrote and measured (also written as ``export.json``)."""

    run_id: str
    format: str
    exporter: str
    opset: int | None
    threads: int
    test_images: int
    image_size: int
    graphs: list[Exported]
    speed: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    quantized: dict[str, Any] | None = None
    #: The run's post-processing of the labels (:mod:`benchbox.engine.postprocess`): not part
    #: of the graphs, whose ``logits`` are raw; a deployment applies it after argmax.
    postprocess: str = "none"
    #: The run's test-time augmentation (:mod:`benchbox.engine.tta`): not part of the graphs
    #: either, which are one pass; a deployment averages the mirrored passes itself.
    tta: str = "none"

    @property
    def max_abs_diff(self) -> float:
        return max((v for g in self.graphs for v in g.parity.values()), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["graphs"] = [
            {**asdict(g), "path": g.path.name, "checked_shape": g.checked_shape}
            for g in self.graphs
        ]
        data["files"] = [str(p) for p in self.files]
        data["max_abs_diff"] = self.max_abs_diff
        data["parity_target"] = PARITY_TARGET
        return data


def _test_arrays(samples: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    items = [samples[i] for i in range(min(n, len(samples)))]
    a = np.stack([np.asarray(s["a"], np.float32) for s in items])
    b = np.stack([np.asarray(s["b"], np.float32) for s in items])
    return a, b


def _graph_inputs(graph: Graph, a: np.ndarray, b: np.ndarray, fusion: Any) -> list[np.ndarray]:
    """The test inputs of a graph: the sources, or what the segmenter sees in the run."""
    if graph.inputs == ("a", "b"):
        return [a, b]
    if fusion is None:
        return [np.concatenate([a, b], axis=1)]
    return eager_runner(fusion)([a, b])


class _GraphModels:
    """An exported pipeline graph seen as the ``fusion`` and ``segmenter`` callables of
    :class:`benchbox.engine.inference.Predictor`, so it is scored exactly like eager models."""

    def __init__(self, runner: Callable[..., list[np.ndarray]], outputs: tuple[str, ...]):
        self.runner, self.outputs = runner, outputs
        self._logits: Any = None

    def _run(self, a: Any, b: Any) -> dict[str, Any]:
        import torch

        outs = self.runner([a.cpu().numpy(), b.cpu().numpy()])
        return {n: torch.from_numpy(o) for n, o in zip(self.outputs, outs, strict=True)}

    def fusion(self, a: Any, b: Any) -> Any:
        out = self._run(a, b)
        self._logits = out.get("logits")
        return out["fused"]

    def segmenter(self, x: Any) -> Any:
        if "fused" in self.outputs:  # the logits of the fused image just computed
            return self._logits
        return self._run(x[:, :1], x[:, 1:2])["logits"]


def _score(dataset: Any, fusion: Any, segmenter: Any, batch_size: int) -> dict[str, float]:
    import torch

    from benchbox.engine.device import resolve_amp
    from benchbox.engine.inference import Predictor, score_split

    cpu = torch.device("cpu")
    predictor = Predictor(fusion, segmenter, cpu, resolve_amp("off", cpu))
    from benchbox.metrics.summary import Summary
    from benchbox.records.leaderboard import headline_columns

    result = score_split(dataset, predictor, split="test", batch_size=batch_size, examples=1)
    means = Summary(result.summary).means()
    return {k: means[k] for k in headline_columns(list(means), top=QUANT_TOP)}


def _quantize(
    run: Any,
    dataset: Any,
    exported: list[Exported],
    staging: StagedFolder,
    test: list[np.ndarray],
    eager: Callable[..., list[np.ndarray]],
    rounds: int,
    log: Log,
) -> dict[str, Any]:
    from benchbox.deploy.quantize import calibration_batches, quantize_int8
    from benchbox.engine.timing import compare_speed

    train = dataset.split("train")
    n_calib = min(64, len(train))
    log(f"quantising to int8 (static, calibrated on {n_calib} training images)")
    batches = calibration_batches(train, count=n_calib)
    files = {}
    for item, graph in zip(exported, graphs_of(run), strict=True):
        dest = staging.tmp / f"{item.graph}.int8.onnx"
        feeds = [
            dict(zip(item.inputs, _graph_inputs(graph, ca, cb, run.fusion), strict=True))
            for ca, cb in batches
        ]
        quantize_int8(item.path, dest, feeds, staging.tmp)
        files[item.graph] = dest
    pipe = next(e for e in exported if e.graph == "pipeline")
    int8 = onnx_runner(files["pipeline"])
    diffs = max_abs_diff(int8(test), eager(test))
    parity = dict(zip(pipe.outputs, diffs, strict=True))
    log("scoring the test split with eager PyTorch and with the int8 pipeline")
    batch = run.config.eval_batch_size
    before = _score(dataset, run.fusion, run.segmenter, batch)
    shim = _GraphModels(int8, pipe.outputs)
    after = _score(
        dataset,
        shim.fusion if run.fusion is not None else None,
        shim.segmenter if run.segmenter is not None else None,
        batch,
    )
    speed = compare_speed(
        {"eager": eager, "onnx": onnx_runner(pipe.path), "onnx-int8": int8}, test, rounds
    )
    return {
        "method": "static int8 (QDQ, per-channel weights, MinMax calibration)",
        "calibration_images": n_calib,
        "files": {k: v.name for k, v in files.items()},
        "max_abs_diff": parity,
        "metrics": {
            "eager": before,
            "int8": after,
            "change": {k: after[k] - before[k] for k in before if k in after},
        },
        "speed": speed,
    }


def graphs_of(run: Any) -> list[Graph]:
    """The graphs of a restored run (:func:`benchbox.deploy.graphs.graphs`)."""
    return graphs(run.fusion, run.segmenter, 1 if run.fusion is not None else 2)


def export_run(
    run_dir: str | Path,
    fmt: str = "onnx",
    *,
    opset: int = 17,
    out: str | Path | None = None,
    quantize: str | None = None,
    exporter: str = "legacy",
    test_images: int = 64,
    rounds: int = 5,
    log: Log | None = None,
) -> ExportReport:
    """Export a finished run, check the graphs against eager PyTorch and time them.

    Args:
        run_dir: ``runs/<run_id>``.
        fmt: ``"onnx"`` or ``"torchscript"``.
        opset: the ONNX opset.
        out: the output folder (default ``<run_dir>/export``).
        quantize: ``"int8"`` to also write static int8 ONNX graphs (ONNX only).
        exporter: ``"legacy"`` (TorchScript-based) or ``"dynamo"`` ONNX exporter.
        test_images: how many test images the parity check and timing use.
        rounds: interleaved timing rounds (medians are reported).
        log: receives progress messages.

    Raises:
        ConfigError: bad options, a missing extra, not a run folder.
        PluginError: the run's plugins are not installed.
        ExportError: a model cannot be exported (names the operator).
    """
    import torch

    from benchbox.engine.restore import load_run, open_training_dataset
    from benchbox.engine.timing import compare_speed

    log = log or (lambda _m: None)
    if fmt not in FORMATS:
        raise errors.ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if exporter not in EXPORTERS:
        raise errors.ConfigError(f"--exporter must be one of {', '.join(EXPORTERS)}")
    low, high = opset_range(exporter)
    if fmt == "onnx" and not low <= opset <= high:
        raise errors.ConfigError(
            f"--opset {opset} is not one the {exporter} ONNX exporter of this PyTorch "
            f"writes ({low} to {high})"
        )
    for flag, value in (("--test-images", test_images), ("--rounds", rounds)):
        if value < 1:
            raise errors.ConfigError(f"{flag} must be at least 1, got {value}")
    if quantize not in (None, "int8"):
        raise errors.ConfigError(f"--quantize supports int8 only, not {quantize!r}")
    if quantize and fmt != "onnx":
        raise errors.ConfigError("--quantize int8 needs --format onnx (onnxruntime quantises)")
    if fmt == "onnx":
        require_onnx()
    run = load_run(run_dir)
    dataset = open_training_dataset(run.config)
    a, b = _test_arrays(dataset.split("test"), test_images)
    size = int(a.shape[-1])
    out_dir = Path(out) if out is not None else run.path / "export"
    exported: list[Exported] = []
    with StagedFolder(out_dir, prefix=".export-") as staging:
        # The models one by one before the pipeline that joins them, so that a model
        # that cannot be exported is named by itself; the pipeline is listed first.
        for graph in sorted(graphs_of(run), key=lambda g: g.name == "pipeline"):
            what = {
                "pipeline": " + ".join(
                    f"{k} {n!r}"
                    for k, n in (("fusion", run.config.fusion), ("segmenter", run.config.seg))
                    if n != "none"
                ),
                "fusion": f"fusion {run.config.fusion!r}",
                "segmenter": f"segmenter {run.config.seg!r}",
            }[graph.name]
            log(f"exporting {graph.name} ({what}) to {fmt}")
            path = staging.tmp / f"{graph.name}{SUFFIX[fmt]}"
            item = export_graph(graph, fmt, path, size, opset, exporter, what)
            inputs = _graph_inputs(graph, a, b, run.fusion)
            try:
                got = load_runner(fmt, path)(inputs)
            except Exception as exc:
                raise ExportError(
                    f"{graph.name} ({what}) exported to {fmt} fails on {len(a)} test images: "
                    f"{first_line(exc)}"
                ) from exc
            diffs = max_abs_diff(got, eager_runner(graph.module)(inputs))
            item.parity = dict(zip(graph.outputs, diffs, strict=True))
            exported.append(item)
        exported.sort(key=lambda e: e.graph != "pipeline")
        pipe = exported[0]
        test = [a, b]
        eager = eager_runner(graphs_of(run)[0].module)
        log(f"timing eager PyTorch and {fmt} side by side ({rounds} rounds)")
        speed = compare_speed({"eager": eager, fmt: load_runner(fmt, pipe.path)}, test, rounds)
        quantized = None
        if quantize:
            quantized = _quantize(run, dataset, exported, staging, test, eager, rounds, log)
        report = ExportReport(
            run_id=run.path.name,
            format=fmt,
            exporter=exporter if fmt == "onnx" else "torch.jit.trace",
            opset=opset if fmt == "onnx" else None,
            threads=torch.get_num_threads(),
            test_images=int(a.shape[0]),
            image_size=size,
            graphs=exported,
            speed=speed,
            quantized=quantized,
            postprocess=run.postprocess,
            tta=run.config.tta,
        )
        from benchbox.records.rundir import write_json

        write_json(staging.tmp / "export.json", report.to_dict())
        report.files = staging.commit()
    for item in exported:
        item.path = out_dir / item.path.name
    return report
