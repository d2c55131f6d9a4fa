"""Time the building of the real-image datasets: first build (empty cache) and cached.

    python benchmarks/data_build.py [--sizes 64 128] [--out benchmarks/data_build.md]

Each build runs in a fresh process (so nothing stays in memory between the builds) with
``BENCHBOX_CACHE`` pointing at a new temporary folder; the second build of the same
dataset reads the cache only. The images come from ``BENCHBOX_DATA``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from benchbox import list_datasets, get_dataset
list_datasets()  # load the plugins before the clock starts
name, root, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = {"config": "configs/brats2015.toml"} if name == "cases" else {}
t0 = time.perf_counter()
ds = get_dataset(name, root=root, image_size=size, seed=0, **opts)
build = time.perf_counter() - t0
t0 = time.perf_counter()
n = {s: len(ds.split(s)) for s in ("train", "val", "test")}
for s in ("train", "test"):
    _ = ds.split(s)[0]
print(json.dumps({"seconds": build, "first_access": time.perf_counter() - t0, "samples": n}))
"""


def _run(name: str, root: Path, size: int, cache: Path) -> dict:
    env = {**os.environ, "BENCHBOX_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(root), str(size)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from benchbox.data.paths import data_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown table here")
    args = parser.parse_args()
    data = data_root()
    targets = [
        ("pairs", data / "aanlib" / "CT-MRI", "aanlib-ct-mri"),
        ("pairs", data / "aanlib" / "PET-MRI", "aanlib-pet-mri"),
        ("pairs", data / "aanlib" / "SPECT-MRI", "aanlib-spect-mri"),
        ("cases", data / "brats2015", "brats2015"),
    ]
    rows = []
    for size in args.sizes:
        for name, root, label in targets:
            if not root.is_dir():
                print(f"skip {label}: {root} not found", file=sys.stderr)
                continue
            with tempfile.TemporaryDirectory() as cache:
                first = _run(name, root, size, Path(cache))
                cached = _run(name, root, size, Path(cache))
            rows.append((label, size, first["seconds"], cached["seconds"], first["samples"]))
            print(
                f"{label:18s} {size:4d}px  first {first['seconds']:6.2f} s  "
                f"cached {cached['seconds']:5.2f} s  {first['samples']}"
            )
    if args.out:
        cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        lines = [
            "# Dataset build times",
            "",
            f"`python benchmarks/data_build.py --out {args.out}` on {cpu}, Python "
            f"{platform.python_version()}. Each build is a fresh process; *first* starts "
            "from an empty cache (reads, checks and preprocesses every file), *cached* "
            "reads the slice cache only (file checksums are still computed). Load average "
            f"at the end: {os.getloadavg()[0]:.1f} (the machine is shared; times are upper "
            "bounds).",
            "",
            "| dataset | image size | first build (s) | cached build (s) | train / val / test |",
            "|---|---|---|---|---|",
        ]
        for label, size, first_s, cached_s, n in rows:
            lines.append(
                f"| {label} | {size} | {first_s:.2f} | {cached_s:.2f} | "
                f"{n['train']} / {n['val']} / {n['test']} |"
            )
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
