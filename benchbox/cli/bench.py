"""``benchbox bench``: training and inference speed of fusion + segmenter pairs."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from benchbox.cli._common import console, console_err
from benchbox.cli._settings import given_settings, settings_parameters

__all__ = ["bench"]


def _names(value: str | None, flag: str, default: str) -> list[str]:
    from benchbox.errors import ConfigError

    names = [n.strip() for n in (value or default).split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{flag} names no model")
    return names


def bench(**options: Any) -> int:
    """Measure images/s, step times, peak memory, parameters and GFLOPs (timm's method).

    The pair is built and trained through benchbox run's own code, so every run option
    that shapes the models (losses and their --*-opt, sizes, precision, --augment, --lr)
    applies. --fusion and --seg take comma-separated names: one pair runs in this
    process, a grid runs each pair in its own subprocess. Rows are appended to
    leaderboards/throughput-<device type>.csv.
    """
    from benchbox import config as cfg
    from benchbox.bench.grid import Outcome, check_names, combinations, run_grid, save_row
    from benchbox.bench.measure import BenchSettings, BenchSpec
    from benchbox.bench.measure import bench as measure

    all_pairs, out, timeout = (options.pop(k) for k in ("all_pairs", "out", "timeout"))
    given = given_settings(options, BenchSettings)
    own = {k: v for k, v in given.items() if k in options and k in _BENCH_FIELDS}
    run = given_settings({k: v for k, v in options.items() if k not in _BENCH_FIELDS})
    fusions = _names(run.pop("fusion", None), "--fusion", cfg.RunConfig.fusion)
    segs = _names(run.pop("seg", None), "--seg", cfg.RunConfig.seg)
    if all_pairs:
        from benchbox.hooks.manager import get_registry

        registry = get_registry()
        fusions = [e.name for e in registry.list("fusion")]
        segs = [e.name for e in registry.list("segmenter")]
    base = BenchSpec.make(**run, **own, fusion=fusions[0], seg=segs[0])
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


def _bench_settings() -> type[Any]:
    from benchbox.bench.measure import BenchSettings

    return BenchSettings


def _bench_parameters() -> list[inspect.Parameter]:
    """bench's options: the run settings marked ``bench``, the measuring settings, and
    what a grid needs (``--all``, ``--out``, ``--timeout``)."""
    from benchbox.bench.measure import BenchSettings

    option = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter(
            "all_pairs",
            option,
            default=typer.Option(
                False, "--all", help="Every registered fusion x segmenter pair (a long grid)."
            ),
            annotation=bool,
        ),
        inspect.Parameter(
            "out",
            option,
            default=typer.Option(".", "--out", "-o", help="Folder holding leaderboards/."),
            annotation=str,
        ),
        inspect.Parameter(
            "timeout",
            option,
            default=typer.Option(1800, "--timeout", help="Seconds allowed per pair in a grid."),
            annotation=float,
        ),
    ]
    run = settings_parameters(keep=lambda s: s.bench)
    return [*run, *settings_parameters(BenchSettings), *extra]


_BENCH_FIELDS = {f.name for f in dataclasses.fields(_bench_settings())}
bench.__signature__ = inspect.Signature(_bench_parameters())  # type: ignore[attr-defined]


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
