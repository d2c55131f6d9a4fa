"""Time benchbox's metrics against MONAI's and the issue's targets.

    BENCHBOX_DATA=/path/to/data python benchmarks/metrics_speed.py [--repeats 15] \
        [--fusion-repeats 30] [--out benchmarks/results/metrics_speed]

1. HD95 of a pair of 240x240x155 masks of tumour size: the whole-tumour reference of
   each BraTS 2015 case in ``BENCHBOX_DATA`` (synthetic ellipsoids when absent) against
   a prediction made from it (shifted 2 voxels, grown by one voxel, a small false
   positive blob), 1 mm isotropic and an anisotropic spacing. benchbox's
   ``compute_hd95`` against MONAI's ``compute_hausdorff_distance(percentile=95)``,
   their values compared, and two alternatives for the record: the bounding-box crop
   plus two Euclidean distance transforms (``sampling=spacing``), which benchbox's
   near-offset search replaces, and medpy's ``hd95`` (full-volume distance transform,
   pooled percentile; timed once, it takes seconds).
2. The whole segmentation suite (8 metrics x 3 BraTS regions) for one case.
3. The whole fusion suite for one 256x256 pair (AANLIB CT-MRI, or IFCNN, fused by
   averaging) side by side with a CDDFuse-style evaluator (``cddfuse_style.py``), and
   each fusion metric on its own.

Timings are medians over ``--repeats`` runs (``--fusion-repeats`` for the fusion suite
against the CDDFuse-style evaluator) after one warm-up, benchbox and MONAI (or CDDFuse)
runs interleaved so that a change of machine load hits both. Wall-clock and process
CPU times are both recorded: on a shared machine the CPU-time ratio is the steadier
one. The load average is recorded before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SPACINGS = {"1 mm isotropic": (1.0, 1.0, 1.0), "anisotropic (2.0, 0.9, 0.8) mm": (2.0, 0.9, 0.8)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("benchbox", "numpy", "scipy", "torch", "monai", "medpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def cpu_seconds() -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, of this process and its finished
    subprocesses, wall clock) now."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    mine = os.times()
    own = mine.user + mine.system + mine.children_user + mine.children_system
    return (sum(ticks[:8]) - idle) / hz, own, time.monotonic()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Median and minimum wall-clock ms, and median process CPU ms, of each function;
    runs interleaved, after a warm-up."""
    values = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0 = time.process_time()
            seconds, _ = timed(fn)
            cpu[name].append(time.process_time() - c0)
            times[name].append(seconds)
    return {
        name: {
            "median_ms": 1000 * statistics.median(t),
            "min_ms": 1000 * min(t),
            "cpu_median_ms": 1000 * statistics.median(cpu[name]),
            "value": values[name],
        }
        for name, t in times.items()
    }


# -- masks -----------------------------------------------------------------------------
def tumour_masks(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from scipy import ndimage

    cases = sorted((data / "brats2015").glob("*/OTMultiClass.nii.gz"))
    refs: list[tuple[str, np.ndarray]] = []
    if cases:
        from benchbox.data.io import read_image

        refs = [(p.parent.name, read_image(p).array > 0) for p in cases]
    else:
        zz, yy, xx = np.mgrid[0:155, 0:240, 0:240]
        for i, (r, c) in enumerate(((22, 80), (30, 120), (18, 150))):
            ref = ((zz - 70) / 0.8) ** 2 + (yy - c) ** 2 + (xx - 110 - 10 * i) ** 2 < r**2
            refs.append((f"synthetic-ellipsoid-{i}", ref))
    out = []
    for name, ref in refs:
        pred = ndimage.binary_dilation(np.roll(ref, 2, axis=2))
        z, y, x = (int(v) for v in np.argwhere(ref).mean(axis=0))
        pred[z : z + 3, y + 40 : y + 44, x : x + 4] = True  # a false positive blob
        out.append((name, pred, ref))
    return out


def edt_hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """The alternative: crop to the union's box, boundaries, then two EDTs."""
    from scipy import ndimage

    from benchbox.metrics.segmentation import _bounding_box, boundary

    box = _bounding_box(pred | ref)
    bp, br = boundary(pred[box]), boundary(ref[box])
    d_pr = ndimage.distance_transform_edt(~br, sampling=spacing)[bp]
    d_rp = ndimage.distance_transform_edt(~bp, sampling=spacing)[br]
    return float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))


def bench_hd95(data: Path, repeats: int) -> list[dict[str, Any]]:
    from benchbox.metrics.segmentation import compute_hd95

    try:
        import torch
        from monai.metrics import compute_hausdorff_distance
    except ImportError:
        compute_hausdorff_distance = None
    try:
        from medpy.metric.binary import hd95 as medpy_hd95
    except ImportError:
        medpy_hd95 = None

    rows = []
    for case, pred, ref in tumour_masks(data):
        for label, spacing in SPACINGS.items():
            fns: dict[str, Callable[[], Any]] = {
                "benchbox": lambda p=pred, r=ref, s=spacing: compute_hd95(p, r, s),
            }
            if compute_hausdorff_distance is not None:
                tp = torch.from_numpy(pred[None, None].astype(np.float32))
                tr = torch.from_numpy(ref[None, None].astype(np.float32))

                def monai(tp=tp, tr=tr, s=spacing) -> float:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        return float(
                            compute_hausdorff_distance(
                                tp, tr, include_background=True, percentile=95, spacing=list(s)
                            )
                        )

                fns["monai"] = monai
            result = interleaved(fns, repeats)
            result.update(
                interleaved(
                    {"crop + EDT": lambda p=pred, r=ref, s=spacing: edt_hd95(p, r, s)},
                    max(3, repeats // 5),
                )
            )
            if medpy_hd95 is not None:  # seconds per call: timed once
                seconds, value = timed(lambda p=pred, r=ref, s=spacing: medpy_hd95(p, r, s))
                result["medpy (pooled)"] = {
                    "median_ms": 1000 * seconds,
                    "min_ms": 1000 * seconds,
                    "value": float(value),
                }
            row = {
                "case": case,
                "spacing": label,
                "shape": list(ref.shape),
                "ref_voxels": int(ref.sum()),
                "pred_voxels": int(pred.sum()),
                "results": result,
            }
            if "monai" in result:
                ours, theirs = result["benchbox"], result["monai"]
                row["speedup_vs_monai"] = theirs["median_ms"] / ours["median_ms"]
                row["abs_diff_vs_monai_mm"] = abs(ours["value"] - theirs["value"])
            rows.append(row)
            print(
                f"{case} {label}: benchbox {result['benchbox']['median_ms']:.1f} ms"
                + (
                    f", MONAI {result['monai']['median_ms']:.1f} ms "
                    f"(x{row['speedup_vs_monai']:.1f}), |diff| {row['abs_diff_vs_monai_mm']:.2e}"
                    if "monai" in result
                    else ""
                ),
                flush=True,
            )
    return rows


def bench_seg_case(data: Path, repeats: int) -> dict[str, Any]:
    from benchbox.metrics.suite import region_preset, score_segmentation_case

    regions = region_preset("brats")  # the built-in plugin's preset

    cases = sorted((data / "brats2015").glob("*/OTMultiClass.nii.gz"))
    if not cases:
        return {}
    from benchbox.data.io import read_image

    ref = read_image(cases[0]).array.astype(np.int64)
    pred = np.roll(ref, 2, axis=2)
    result = interleaved(
        {"suite": lambda: score_segmentation_case(pred, ref, (1.0, 1.0, 1.0), regions)},
        max(3, repeats // 3),
    )["suite"]
    return {
        "case": cases[0].parent.name,
        "regions": list(regions),
        "metrics": 8,
        "median_ms": result["median_ms"],
        "min_ms": result["min_ms"],
    }


# -- fusion ----------------------------------------------------------------------------
def fusion_pair(data: Path) -> tuple[str, np.ndarray, np.ndarray]:
    from benchbox.data.io import read_image

    ct = sorted((data / "aanlib" / "CT-MRI" / "test" / "CT").glob("*.png"))
    if ct:
        mri = ct[0].parents[1] / "MRI" / ct[0].name
        return f"aanlib CT-MRI {ct[0].stem}", read_image(ct[0]).array, read_image(mri).array
    ifcnn = data / "fixtures" / "ifcnn"
    if (ifcnn / "c01_1.tif").exists():
        return (
            "ifcnn c01",
            read_image(ifcnn / "c01_1.tif").array,
            read_image(ifcnn / "c01_2.tif").array,
        )
    rng = np.random.default_rng(0)
    return "random", rng.integers(0, 256, (256, 256)), rng.integers(0, 256, (256, 256))


def quiet(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` without its warnings (scikit-learn warns on every float MI call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def bench_fusion(data: Path, repeats: int, fusion_repeats: int) -> dict[str, Any]:
    from cddfuse_style import evaluate as cddfuse_evaluate

    from benchbox.metrics.suite import metrics_for, score_fusion_case

    name, a8, b8 = fusion_pair(data)
    a, b = a8 / 255.0, b8 / 255.0
    fused = (a + b) / 2
    f255, a255, b255 = fused * 255.0, a * 255.0, b * 255.0
    side_by_side = interleaved(
        {
            "benchbox suite": lambda: score_fusion_case(fused, a, b),
            "CDDFuse-style evaluator": lambda: quiet(cddfuse_evaluate, f255, a255, b255),
        },
        fusion_repeats,
    )
    suite = side_by_side["benchbox suite"]
    theirs = side_by_side["CDDFuse-style evaluator"]
    per_metric = interleaved(
        {e.name: (lambda e=e: e.factory(fused, a, b)) for e in metrics_for("fusion")}, repeats
    )
    ratio = theirs["median_ms"] / suite["median_ms"]
    cpu_ratio = theirs["cpu_median_ms"] / suite["cpu_median_ms"]
    print(
        f"fusion suite {a.shape}: {suite['median_ms']:.1f} ms, CDDFuse-style "
        f"{theirs['median_ms']:.1f} ms (x{ratio:.1f}; CPU time x{cpu_ratio:.1f})",
        flush=True,
    )
    return {
        "pair": name,
        "shape": list(a.shape),
        "fused_by": "average",
        "suite_median_ms": suite["median_ms"],
        "suite_min_ms": suite["min_ms"],
        "cddfuse_median_ms": theirs["median_ms"],
        "cddfuse_min_ms": theirs["min_ms"],
        "cddfuse_values": theirs["value"],
        "speedup_vs_cddfuse": ratio,
        "suite_cpu_median_ms": suite["cpu_median_ms"],
        "cddfuse_cpu_median_ms": theirs["cpu_median_ms"],
        "cpu_speedup_vs_cddfuse": cpu_ratio,
        "repeats": fusion_repeats,
        "columns": suite["value"],
        "per_metric_median_ms": {k: v["median_ms"] for k, v in per_metric.items()},
    }


# -- report ----------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Metric speed",
        "",
        "`BENCHBOX_DATA=/work/shared/data python benchmarks/metrics_speed.py --repeats "
        f"{report['repeats']} --fusion-repeats {report.get('fusion_repeats', '?')}` on "
        f"{m['cpu']}, "
        f"{m['cores']} cores, {m['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        "",
        f"Load average (1, 5, 15 min) before: {m['load_before']}, after: {m['load_after']} "
        f"on {m['cores']} cores. {m['load_note']}",
        "",
        "## HD95 of 240x240x155 tumour masks",
        "",
        "Medians in ms. Target: benchbox at least 5x faster than MONAI's "
        "`compute_hausdorff_distance(percentile=95)`, with the same value.",
        "",
        "| case | spacing | ref / pred voxels | benchbox | MONAI | speed-up | difference to MONAI "
        "(mm) | HD95 (mm) | crop + EDT | medpy, once (its pooled HD95, mm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["hd95"]:
        r = row["results"]

        def cell(key: str, r: dict[str, Any] = r) -> str:
            return f"{r[key]['median_ms']:.1f}" if key in r else "-"

        medpy = r.get("medpy (pooled)")
        lines.append(
            f"| {row['case']} | {row['spacing']} | {row['ref_voxels']} / {row['pred_voxels']} | "
            f"{cell('benchbox')} | {cell('monai')} | "
            + (f"{row['speedup_vs_monai']:.1f}x" if "speedup_vs_monai" in row else "-")
            + " | "
            + (f"{row['abs_diff_vs_monai_mm']:.1e}" if "abs_diff_vs_monai_mm" in row else "-")
            + f" | {r['benchbox']['value']:.4f} | {cell('crop + EDT')} | "
            + (f"{medpy['median_ms']:.0f} ({medpy['value']:.4f})" if medpy else "-")
            + " |"
        )
    speedups = [row["speedup_vs_monai"] for row in report["hd95"] if "speedup_vs_monai" in row]
    if speedups:
        lines += ["", f"Smallest speed-up over MONAI: {min(speedups):.1f}x."]
    seg = report.get("segmentation_case")
    if seg:
        lines += [
            "",
            "## One BraTS case, whole segmentation suite",
            "",
            f"{seg['metrics']} metrics x {len(seg['regions'])} regions "
            f"({', '.join(seg['regions'])}) on {seg['case']}: median {seg['median_ms']:.0f} ms "
            f"(min {seg['min_ms']:.0f} ms), reading excluded.",
        ]
    fusion = report["fusion"]
    lines += [
        "",
        "## Fusion suite, one 256x256 pair",
        "",
        f"{fusion['pair']}, fused by {fusion['fused_by']}: the whole suite (every registered "
        f"fusion metric) takes a median {fusion['suite_median_ms']:.1f} ms "
        f"(min {fusion['suite_min_ms']:.1f} ms). Measured side by side, interleaved, the "
        "CDDFuse-style evaluator (`benchmarks/cddfuse_style.py`: the eight metrics CDDFuse's "
        "test script reports, computed its way) takes "
        f"{fusion['cddfuse_median_ms']:.1f} ms (min {fusion['cddfuse_min_ms']:.1f} ms), "
        f"medians of {fusion.get('repeats', '?')} interleaved runs: "
        "benchbox's suite, which computes more metrics, is "
        f"**{fusion['speedup_vs_cddfuse']:.1f}x** faster in wall-clock time and "
        f"**{fusion.get('cpu_speedup_vs_cddfuse', float('nan')):.1f}x** in process CPU time "
        f"({fusion.get('suite_cpu_median_ms', float('nan')):.1f} against "
        f"{fusion.get('cddfuse_cpu_median_ms', float('nan')):.1f} ms; target at least 10x). "
        "Its VIF, the one metric both define identically, "
        f"agrees: {fusion['cddfuse_values']['VIF']:.6f} against benchbox's "
        f"{fusion['columns'].get('vif', float('nan')):.6f}. Below, each metric "
        "called on its own: inside the suite SSIM and MS-SSIM share one SSIM pyramid, and "
        "Qabf and Nabf one Sobel pass.",
        "",
        "| metric | median ms | value |",
        "|---|---|---|",
    ]
    for name, ms in sorted(fusion["per_metric_median_ms"].items(), key=lambda kv: -kv[1]):
        values = {
            k: v for k, v in fusion["columns"].items() if k == name or k.startswith(name + "_")
        }
        shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
        lines.append(f"| {name} | {ms:.2f} | {shown} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from benchbox.data.paths import data_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--fusion-repeats",
        type=int,
        default=30,
        help="interleaved runs of the fusion suite and the CDDFuse-style evaluator",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "metrics_speed",
        help="write <out>.json and <out>.md",
    )
    args = parser.parse_args()
    data = data_root()
    cores = os.cpu_count() or 1
    load_before = [round(v, 2) for v in os.getloadavg()]
    start = cpu_seconds()
    report: dict[str, Any] = {"repeats": args.repeats, "fusion_repeats": args.fusion_repeats}
    report["hd95"] = bench_hd95(data, args.repeats)
    report["segmentation_case"] = bench_seg_case(data, args.repeats)
    report["fusion"] = bench_fusion(data, args.repeats, args.fusion_repeats)
    end = cpu_seconds()
    load_after = [round(v, 2) for v in os.getloadavg()]
    # The load average counts this benchmark too; the CPU time of everything else is
    # the honest measure of how busy the shared machine was.
    others = max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / (end[2] - start[2])
    busy = others > 0.2
    report["machine"] = {
        "cpu": cpu_name(),
        "cores": cores,
        "platform": f"{platform.system()} {platform.machine()}",
        "versions": versions(),
        "load_before": load_before,
        "load_after": load_after,
        "other_processes_cores": round(others, 2),
        "load_note": (
            f"Other processes used {others:.2f} of the {cores} cores on average during the "
            "run (this benchmark's own CPU time excluded): "
            + (
                "the machine was busy and the times are upper bounds."
                if busy
                else "the machine was quiet."
            )
        ),
        "torch_threads": __import__("torch").get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
