"""The graphs of a trained run, exported to ONNX or TorchScript and run back.

Three graphs are exported: ``pipeline`` (sources ``a``, ``b`` -> ``fused`` and
``logits``; a fusion-only run outputs ``fused``, an early-fusion run ``logits``),
``fusion`` and ``segmenter``. Batch and spatial sizes are dynamic where the model
allows it, which is checked, not assumed: each graph is run at a second batch size and
image size and compared with eager PyTorch; a graph whose results differ there is
exported again with a dynamic batch only. A graph that fails or differs at a second
batch size too kept a shape of the trace (a ``forward`` that builds an array with numpy,
or a number from a tensor's shape, freezes it as a constant): it is refused, naming the
component, since it would only run on inputs shaped like the tracing example.

ONNX is written with PyTorch's TorchScript-based exporter (``dynamo=False``). The
``torch.export``-based exporter, PyTorch's default since 2.9, produced the same graphs
for the built-in models (max difference 1e-7 either way) but took 40-65 s per graph on
a 2-core CPU against 4 s, and neither exporter keeps a Python branch on tensor shapes
(such as padding to a multiple of ``2**depth``) in the graph, so the check at a second
shape is needed with both. ``exporter="dynamo"`` selects the newer one.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchbox import errors

__all__ = [
    "EXPORTERS",
    "FORMATS",
    "PARITY_TARGET",
    "SUFFIX",
    "ExportError",
    "Exported",
    "Graph",
    "Runner",
    "eager_runner",
    "export_graph",
    "first_line",
    "graphs",
    "load_runner",
    "max_abs_diff",
    "onnx_runner",
    "onnx_session",
    "opset_range",
    "require_onnx",
    "torchscript_runner",
]

FORMATS = ("onnx", "torchscript")
EXPORTERS = ("legacy", "dynamo")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
#: The parity target of the issue and the README: max |exported - eager|.
PARITY_TARGET = 1e-4


class ExportError(errors.BenchboxError):
    """A model that cannot be exported (names the model and the operator)."""


def opset_range(exporter: str) -> tuple[int, int]:
    """The ONNX opsets the installed PyTorch's ``exporter`` writes, lowest and highest."""
    try:
        from torch.onnx import _constants as known

        low, high = known.ONNX_MIN_OPSET, known.ONNX_MAX_OPSET
        legacy_high = known.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):  # a PyTorch that moved them: its 2.9 values
        low, high, legacy_high = 7, 23, 20
    return (low, legacy_high) if exporter == "legacy" else (low, high)


def require_onnx() -> None:
    """Fail with one line naming the extra when onnx or onnxruntime is missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise errors.ConfigError(
            f"{' and '.join(missing)} not installed; ONNX export needs them: "
            'pip install "benchbox[export]"'
        )


def _pipeline_module(fusion: Any, segmenter: Any) -> Any:
    import torch

    class Pipeline(torch.nn.Module):
        """Fusion and segmentation as one graph: ``(a, b) -> (fused, logits)``."""

        def __init__(self) -> None:
            super().__init__()
            self.fusion, self.segmenter = fusion, segmenter

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> Any:
            fused = self.fusion(a, b) if self.fusion is not None else None
            if self.segmenter is None:
                return fused
            x = fused if fused is not None else torch.cat([a, b], dim=1)
            logits = self.segmenter(x)
            return logits if fused is None else (fused, logits)

    return Pipeline().eval()


@dataclass
class Graph:
    """One model to export: the module, its named inputs and outputs."""

    name: str
    module: Any
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    channels: tuple[int, ...]  # input channels, one per input

    def example(self, batch: int, height: int, width: int, seed: int = 0) -> list[Any]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        return [torch.rand(batch, c, height, width, generator=gen) for c in self.channels]


def graphs(fusion: Any, segmenter: Any, seg_channels: int) -> list[Graph]:
    """The pipeline and each model of a run, as :class:`Graph` objects."""
    outputs = tuple(n for n, m in (("fused", fusion), ("logits", segmenter)) if m is not None)
    out = [Graph("pipeline", _pipeline_module(fusion, segmenter), ("a", "b"), outputs, (1, 1))]
    if fusion is not None and segmenter is not None:
        out.append(Graph("fusion", fusion, ("a", "b"), ("fused",), (1, 1)))
    if segmenter is not None and (fusion is not None or seg_channels != 2):
        out.append(Graph("segmenter", segmenter, ("x",), ("logits",), (seg_channels,)))
    return out


# -- running a model: eager, onnxruntime, TorchScript ----------------------------------
Runner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def eager_runner(module: Any) -> Runner:
    import torch

    def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = module(*(torch.from_numpy(a) for a in arrays))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.float().numpy() for o in outs]

    return run


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session using ``threads`` (default: torch's thread count)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # errors are raised, and reported by benchbox
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(path: Path, threads: int | None = None) -> Runner:
    session = onnx_session(path, threads)
    names = [i.name for i in session.get_inputs()]

    def run(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = {
            n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(names, arrays, strict=True)
        }
        return list(session.run(None, feeds))

    return run


def torchscript_runner(path: Path) -> Runner:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
        return eager_runner(torch.jit.load(str(path), map_location="cpu"))


def load_runner(fmt: str, path: Path, threads: int | None = None) -> Runner:
    return onnx_runner(path, threads) if fmt == "onnx" else torchscript_runner(path)


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> list[float]:
    """Per output, the largest absolute difference (inf if shapes differ)."""
    return [
        float(np.max(np.abs(x - y))) if x.shape == y.shape else float("inf")
        for x, y in zip(a, b, strict=True)
    ]


# -- exporting ---------------------------------------------------------------------------
def _operator(exc: BaseException) -> str | None:
    text = str(exc)
    for pattern in (r"operator '([\w:.]+)'", r"(aten[:.]+\w+(?:\.\w+)?)", r"Unsupported: (.+)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip()
    return None


def _export_error(graph: Graph, what: str, fmt: str, exc: BaseException) -> ExportError:
    op = _operator(exc)
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    reason = f"operator {op} is not supported" if op else first[:200]
    return ExportError(f"{graph.name} ({what}) cannot be exported to {fmt}: {reason}")


@contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Keep what PyTorch's C++ side prints (the whole graph when an ONNX export fails)
    off the console: the failure is reported as one line instead."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _write(
    graph: Graph,
    fmt: str,
    path: Path,
    example: list[Any],
    axes: str,
    opset: int,
    exporter: str,
) -> None:
    import torch

    with warnings.catch_warnings(), _quiet_native_output():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: checked below
        if fmt == "torchscript":
            with torch.inference_mode(False), torch.no_grad():
                traced = torch.jit.trace(graph.module, tuple(example), check_trace=False)
                # Freezing inlines the weights and folds constants; optimize_for_inference
                # is left out: its MKLDNN rewrites do not load back in torch 2.14.
                frozen = torch.jit.freeze(traced.eval())
            torch.jit.save(frozen, str(path))
            return
        dims = {0: "batch"} if axes != "static" else {}
        if axes == "batch+size":
            dims = {0: "batch", 2: "height", 3: "width"}
        if exporter == "dynamo":
            from torch.export import Dim

            auto = {k: Dim.AUTO for k in dims}
            torch.onnx.export(
                graph.module,
                tuple(example),
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=list(graph.inputs),
                output_names=list(graph.outputs),
                dynamic_shapes={n: auto for n in graph.inputs},
                verbose=False,
            )
            return
        torch.onnx.export(
            graph.module,
            tuple(example),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(graph.inputs),
            output_names=list(graph.outputs),
            dynamic_axes={n: dims for n in (*graph.inputs, *graph.outputs)},
            do_constant_folding=True,
        )


@dataclass
class Exported:
    """One written graph and what was checked about it."""

    graph: str
    path: Path
    axes: str  # "batch+size" or "batch"
    checked_shape: tuple[int, ...] | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parity: dict[str, float] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)


def export_graph(
    graph: Graph,
    fmt: str,
    path: Path,
    size: int,
    opset: int = 17,
    exporter: str = "legacy",
    what: str = "",
) -> Exported:
    """Export ``graph`` with the most dynamic axes that give eager's results.

    The graph is traced at batch 2 and ``size x size``, then run at batch 3 and
    ``(size + 32) x (size + 64)`` (a size every built-in model takes: benchbox trains at
    multiples of 32) and compared with eager; if results differ or the run fails, it
    is exported again with a dynamic batch only and run at batch 3 and ``size x size``.

    Raises:
        ExportError: the model cannot be exported (names the operator when known), or
            its graph fails or differs from eager at batch 3 too (it kept a shape of
            the trace).
    """
    eager = eager_runner(graph.module)
    name = f"{graph.name} ({what})" if what else graph.name
    problem, failure = "", None
    for axes in ("batch+size", "batch"):
        try:
            _write(graph, fmt, path, graph.example(2, size, size), axes, opset, exporter)
        except Exception as exc:
            raise _export_error(graph, what, fmt, exc) from None
        shape = (3, size + 32, size + 64) if axes == "batch+size" else (3, size, size)
        probe = [x.numpy() for x in graph.example(*shape, seed=1)]
        try:
            diffs = max_abs_diff(load_runner(fmt, path)(probe), eager(probe))
        except Exception as exc:
            problem, failure = "fails", exc
            continue
        if max(diffs) <= PARITY_TARGET:
            checked = (shape[0], graph.channels[0], shape[1], shape[2])
            return Exported(graph.name, path, axes, checked, graph.inputs, graph.outputs)
        problem, failure = f"differs from eager by {max(diffs):.1e}", None
    raise ExportError(
        f"{name} cannot be exported to {fmt}: its graph keeps the shape it was traced at "
        f"(batch 2, {size}x{size}) and {problem} at batch 3; a value its forward computes "
        "outside torch (with numpy, or from a tensor's shape) became a constant: build it "
        "with torch operations"
    ) from failure


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, without onnxruntime's prefix."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return (text[:limit] + "...") if len(text) > limit else (text or type(exc).__name__)
