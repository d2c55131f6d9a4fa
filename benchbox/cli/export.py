"""``benchbox export``: a trained run to ONNX or TorchScript, checked against eager."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from benchbox.cli._common import console

if TYPE_CHECKING:
    from benchbox.deploy.export import ExportReport

__all__ = ["export", "render"]


def _log(message: str) -> None:
    console.print(f"[dim]{escape(message)}[/]", highlight=False)


def _shape(item: object) -> str:
    axes = getattr(item, "axes", "static")
    checked = getattr(item, "checked_shape", None)
    where = f", checked at {'x'.join(map(str, checked))}" if checked else ""
    return {
        "batch+size": "dynamic batch and size",
        "batch": "dynamic batch",
        "static": "static shape",
    }[axes] + where


def render(report: ExportReport) -> None:
    """Print what was written, its parity with eager PyTorch and the speed lines."""
    from benchbox.deploy.graphs import PARITY_TARGET

    engine = "onnxruntime" if report.format == "onnx" else "TorchScript"
    for item in report.graphs:
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in item.parity.items())
        console.print(
            f"[bold]{item.graph:<9}[/] {escape(str(item.path))}  "
            f"({', '.join(item.inputs)} -> {', '.join(item.outputs)}; {_shape(item)})",
            highlight=False,
        )
        mark = "[green]ok[/]" if max(item.parity.values()) <= PARITY_TARGET else "[red]over[/]"
        console.print(
            f"          max |{engine} - eager| {diffs} on {report.test_images} test images "
            f"({mark}, target {PARITY_TARGET:.0e})",
            highlight=False,
        )
    ips = report.speed["images_per_s"]
    fmt = report.format
    console.print(
        f"[bold]speed[/]     eager {ips['eager']:.1f} img/s, {engine} {ips[fmt]:.1f} img/s "
        f"([bold]{ips[fmt] / ips['eager']:.2f}x[/]); pipeline, batch {report.speed['batch']} "
        f"at {report.image_size}x{report.image_size}, {report.threads} thread(s), median of "
        f"{report.speed['n_rounds']} interleaved rounds",
        highlight=False,
    )
    if report.postprocess != "none":
        console.print(
            f"[bold]note[/]      the run post-processes its labels ({report.postprocess}); "
            "the graphs output raw logits: apply it after the argmax "
            "(benchbox.engine.postprocess.keep_largest)",
            highlight=False,
        )
    if report.tta != "none":
        console.print(
            f"[bold]note[/]      the run was scored with --tta {report.tta}; the graphs are "
            "one pass: average the mirrored passes' probabilities yourself "
            "(benchbox.engine.tta.segment)",
            highlight=False,
        )
    q = report.quantized
    if q:
        qips = q["speed"]["images_per_s"]
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in q["max_abs_diff"].items())
        console.print(
            f"[bold]int8[/]      {q['method']}, {q['calibration_images']} training images; "
            f"max |int8 - eager| {diffs}",
            highlight=False,
        )
        console.print(
            f"          speed: eager {qips['eager']:.1f}, onnx {qips['onnx']:.1f}, int8 "
            f"{qips['onnx-int8']:.1f} img/s ([bold]{qips['onnx-int8'] / qips['eager']:.2f}x[/] "
            f"eager, {qips['onnx-int8'] / qips['onnx']:.2f}x float32 onnx)",
            highlight=False,
        )
        m = q["metrics"]
        for key in sorted(m["change"]):
            console.print(
                f"          {key:<14} eager {m['eager'][key]:.4f}  int8 {m['int8'][key]:.4f}  "
                f"change {m['change'][key]:+.4f}",
                highlight=False,
            )
    console.print(
        "wrote " + ", ".join(escape(str(p)) for p in report.files if p.suffix == ".json"),
        highlight=False,
    )


def export(
    run_dir: Path = typer.Argument(..., help="A finished run folder, runs/<run_id>."),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (RUN_DIR/export)."),
    quantize: str | None = typer.Option(
        None, "--quantize", help="int8: also write static int8 ONNX graphs and score them."
    ),
    exporter: str = typer.Option(
        "legacy", "--exporter", help="ONNX exporter: legacy (TorchScript-based) or dynamo."
    ),
    test_images: int = typer.Option(
        64, "--test-images", help="Test images used for the parity check and timing."
    ),
    rounds: int = typer.Option(5, "--rounds", help="Interleaved timing rounds (median)."),
) -> None:
    """Export a trained run (pipeline, fusion, segmenter) and check it against eager."""
    from benchbox.deploy.export import export_run

    report = export_run(
        run_dir,
        fmt.lower(),
        opset=opset,
        out=out,
        quantize=quantize.lower() if quantize else None,
        exporter=exporter.lower(),
        test_images=test_images,
        rounds=rounds,
        log=_log,
    )
    render(report)
