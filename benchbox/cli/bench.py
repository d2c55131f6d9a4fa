"""``benchbox bench``: training and inference speed of fusion + segmenter pairs."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err
from benchbox.cli.run import Amp


def _names(value: str, flag: str) -> list[str]:
    from benchbox.errors import ConfigError

    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{flag} names no model")
    return names


def bench(
    fusion: str = typer.Option("dual", "--fusion", "-f", help="Fusion model(s), comma-separated."),
    seg: str = typer.Option("attunet", "--seg", "-s", help="Segmenter(s), comma-separated."),
    all_pairs: bool = typer.Option(
        False, "--all", help="Every registered fusion x segmenter pair (a long grid)."
    ),
    image_size: int = typer.Option(64, "--image-size", help="Side of the square input."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Batch size."),
    amp: Amp = typer.Option(Amp.off, "--amp", help="Precision: off (float32), bf16, fp16, auto."),
    channels_last: bool = typer.Option(False, "--channels-last", help="NHWC memory format."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the models."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed warm-up steps per phase."),
    steps: int = typer.Option(40, "--steps", help="Timed steps per phase."),
    mode: str = typer.Option("both", "--mode", help="both, train or infer."),
    fusion_opt: list[str] | None = typer.Option(
        None, "--fusion-opt", help="Fusion model parameter key=value (repeatable)."
    ),
    seg_opt: list[str] | None = typer.Option(
        None, "--seg-opt", help="Segmenter parameter key=value (repeatable)."
    ),
    out: str = typer.Option(".", "--out", help="Folder holding leaderboards/."),
    timeout: float = typer.Option(
        1800, "--timeout", help="Seconds allowed per combination in a grid."
    ),
) -> int:
    """Measure images/s, step times, peak memory, parameters and GFLOPs (timm's method).

    One pair runs in this process; a grid runs each pair in its own subprocess. Rows
    are appended to leaderboards/throughput-<device type>.csv.
    """
    from benchbox.bench.grid import Outcome, check_names, combinations, run_grid, save_row
    from benchbox.bench.measure import BenchSpec
    from benchbox.bench.measure import bench as measure
    from benchbox.config.settings import parse_options

    base = BenchSpec(
        image_size=image_size,
        batch_size=batch_size,
        amp=amp.value,
        channels_last=channels_last,
        compile=compile_,
        device=device,
        warmup=warmup,
        steps=steps,
        mode=mode,
        fusion_opts=parse_options(fusion_opt, "--fusion-opt"),
        seg_opts=parse_options(seg_opt, "--seg-opt"),
    )
    if all_pairs:
        from benchbox.hooks.manager import get_registry

        registry = get_registry()
        fusions = [e.name for e in registry.list("fusion")]
        segs = [e.name for e in registry.list("segmenter")]
    else:
        fusions, segs = _names(fusion, "--fusion"), _names(seg, "--seg")
    specs = combinations(fusions, segs, base)
    check_names(specs)
    if len(specs) == 1:
        row = measure(specs[0])
        path = save_row(row, out)
        _render([Outcome(specs[0], row=row, leaderboard=path)])
        return 0

    def progress(o: Outcome) -> None:
        status = "[green]done[/]" if o.row else f"[red]failed[/]: {escape(o.error or '')}"
        console.print(f"{escape(o.spec.label)}: {status}", highlight=False)

    console.print(f"[dim]{len(specs)} combinations, each in its own process[/]")
    outcomes = run_grid(specs, out, timeout, progress)
    _render(outcomes)
    failed = [o for o in outcomes if o.row is None]
    for o in failed:
        console_err.print(
            f"[bold red]error:[/] {escape(o.spec.label)}: {escape(o.error or '')}",
            highlight=False,
            soft_wrap=True,
        )
    return 1 if failed else 0


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _render(outcomes: list[Any]) -> None:
    done = [o for o in outcomes if o.row]
    if not done:
        return
    first = done[0].row
    table = Table(
        title=f"{first['device']}, {first['precision']}, {first['image_size']}px, "
        f"channels_last {first['channels_last']}, compile {first['compile']}",
        title_justify="left",
    )
    for name in ("pair", "batch", "train img/s", "train ms p50/p95", "train peak MB"):
        table.add_column(name, justify="left" if name == "pair" else "right")
    for name in ("infer img/s", "infer ms p50/p95", "params", "GFLOPs/img"):
        table.add_column(name, justify="right")
    for o in done:
        r = o.row
        params = (r.get("fusion_params") or 0) + (r.get("seg_params") or 0)
        gflops = (r.get("fusion_gflops") or 0.0) + (r.get("seg_gflops") or 0.0)
        batch = "/".join(
            str(r[k]) for k in ("train_batch_size", "infer_batch_size") if r.get(k) is not None
        )
        table.add_row(
            o.spec.label,
            batch,
            _fmt(r.get("train_img_s")),
            f"{_fmt(r.get('train_step_ms_p50'))}/{_fmt(r.get('train_step_ms_p95'))}",
            _fmt(r.get("train_peak_mem_mb"), 0),
            _fmt(r.get("infer_img_s")),
            f"{_fmt(r.get('infer_step_ms_p50'))}/{_fmt(r.get('infer_step_ms_p95'))}",
            f"{params / 1e6:.2f}M",
            f"{gflops:.2f}",
        )
    console.print(table)
    for o in done:
        if o.row.get("note"):
            console.print(f"[yellow]{escape(o.spec.label)}: {escape(o.row['note'])}[/]")
    console.print(f"[dim]rows appended to {escape(str(done[0].leaderboard))}[/]")
