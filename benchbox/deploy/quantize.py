"""int8 quantisation of exported ONNX graphs with onnxruntime.

Static quantisation, not dynamic: onnxruntime's dynamic quantisation computes the
activation scales at run time and only quantises MatMul/Gemm-heavy graphs
(transformers, LSTMs) well; in a convolutional network it adds a scale computation per
convolution (ConvInteger) and is usually slower than float32 on CPU. Static
quantisation fixes every activation scale beforehand from calibration images, here the
run's own training images (never its test images), and writes QDQ nodes that
onnxruntime fuses into int8 convolutions. Weights are quantised per output channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["calibration_batches", "quantize_int8"]


class _Reader:
    """onnxruntime's calibration data reader protocol over a list of feeds."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        self._feeds: Iterator[Mapping[str, np.ndarray]] = iter(list(feeds))

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._feeds, None)
        return None if feed is None else {k: np.asarray(v, np.float32) for k, v in feed.items()}

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax calibration
        pass


def calibration_batches(
    samples: Any, count: int = 64, batch: int = 16
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The sources ``(a, b)`` of the first ``count`` samples of a split, in batches."""
    n = min(count, len(samples))
    feeds = []
    for start in range(0, n, batch):
        items = [samples[i] for i in range(start, min(start + batch, n))]
        a = np.stack([np.asarray(s["a"], np.float32) for s in items])
        b = np.stack([np.asarray(s["b"], np.float32) for s in items])
        feeds.append((a, b))
    return feeds


def quantize_int8(
    source: Path, dest: Path, feeds: Iterable[Mapping[str, np.ndarray]], tmp: Path
) -> Path:
    """Write the static int8 (QDQ, per-channel) version of ``source`` to ``dest``.

    Args:
        source: a float32 ONNX graph.
        dest: the int8 graph to write.
        feeds: calibration inputs, ``{input name: array}`` per batch.
        tmp: a scratch folder for the shape-inferred copy.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = tmp / f"{source.stem}.prep.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=False)
    quantize_static(
        str(prepared),
        str(dest),
        _Reader(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    prepared.unlink(missing_ok=True)
    return dest
