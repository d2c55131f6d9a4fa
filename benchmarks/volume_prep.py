"""Preparing many BraTS-sized volumes for 3D runs: time per case and peak memory.

    python benchmarks/volume_prep.py [--cases 200] [--subsets 25 50 100 200]
        [--spacing 2,2,2] [--work /tmp/volume-prep] [--out benchmarks/results/volume_prep]

There are only 4 BraTS cases here, so ``--cases`` cases of the real size are generated
first (untimed): case folders like ``brats2015`` (FLAIR and T1c, ``int16``, 240 x 240 x
155 at 1 mm, gzip-compressed NIfTI as BraTS ships them, a brain mask and a tumour label),
each one different (its own brain, tumour and noise), so every case is read, checked,
normalised, cropped and resampled, not served from the cache by a twin.

Then, for each subset size N, a fresh process builds ``cases:`` over the first N cases
as a 3D run does (``fit=none`` and the target ``--spacing``), with an empty cache
(``BENCHBOX_CACHE`` in a new folder); a second fresh process builds it again from the
cache and reads every training volume once (what a 3D run's patch sampler and the
sliding windows read). Each child reports its wall time and its peak resident memory
(``VmHWM``). Memory that stays flat as N grows is the point: cases are preprocessed a
few at a time and read back memory-mapped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (155, 240, 240)  # z, y, x as stored: BraTS's 240 x 240 x 155 at 1 mm

CONFIG = """
name = "prep"
cases = "case_*"
fuse = ["FLAIR", "T1c"]
label = "seg.nii.gz"
foreground = "brain.nii.gz"

[modalities]
FLAIR = "flair.nii.gz"
T1c = "t1c.nii.gz"

[labels]
0 = "background"
1 = "tumour"

[split]
val_fraction = 0.1
test_fraction = 0.1
"""

CHILD = """
import json, re, sys, time
from pathlib import Path
from benchbox.data.cases import open_cases
root, config, spacing, read = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
t0 = time.perf_counter()
ds = open_cases(root, config=config, fit="none", spacing=None if spacing == "none" else spacing)
build = time.perf_counter() - t0
t0 = time.perf_counter()
voxels = 0
if read:
    for volume in ds.volumes("train"):
        voxels += int(volume.a.size) + int(float(volume.a.sum()) > -1)
status = Path("/proc/self/status").read_text()
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) * 1024
n = len(ds._cases)
shape = list(ds.volumes("train")[0].a.shape)
print(json.dumps({"cases": n, "build_s": build, "read_s": time.perf_counter() - t0,
                  "peak_rss_mb": hwm / 2**20, "shape": shape}))
"""


def _case(index: int, folder: Path) -> None:
    """One BraTS-sized case: its own brain ellipsoid, tumour, intensities and noise."""
    import numpy as np
    import SimpleITK as sitk

    rng = np.random.default_rng(index)
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    centre = np.array(SHAPE) / 2 + rng.integers(-6, 7, size=3)
    axes = np.array([62, 95, 75]) * rng.uniform(0.9, 1.1, size=3)
    brain = ((z - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2
    brain = brain + ((x - centre[2]) / axes[2]) ** 2 < 1
    spot = centre + rng.uniform(-0.4, 0.4, size=3) * axes
    radius = rng.uniform(10, 25)
    tumour = ((z - spot[0]) ** 2 + (y - spot[1]) ** 2 + (x - spot[2]) ** 2 < radius**2) & brain
    images = {}
    for name, base, lesion in (("flair", 300, 250), ("t1c", 500, 150)):
        noise = rng.normal(0, 25, size=SHAPE).astype(np.float32)
        img = np.where(brain, base + noise, 0) + np.where(tumour, lesion, 0)
        images[name] = img.astype(np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {**images, "seg": tumour.astype(np.uint8), "brain": brain.astype(np.uint8)}
    for name, array in arrays.items():
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 1.0))
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"), useCompression=True)


def _child(root: Path, config: Path, spacing: str, cache: Path, read: bool) -> dict:
    env = {**os.environ, "BENCHBOX_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(config), spacing, "1" if read else "0"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--subsets", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--spacing", default="2,2,2", help="z,y,x in mm, or none")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "volume-prep")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/volume_prep")
    args = parser.parse_args()
    data = args.work / "cases"
    t0 = time.perf_counter()
    made = 0
    for i in range(args.cases):
        folder = data / f"case_{i:04d}"
        if not (folder / "brain.nii.gz").exists():
            _case(i, folder)
            made += 1
    generated = time.perf_counter() - t0
    print(f"generated {made} cases in {generated:.0f} s", flush=True)
    rows = []
    for n in args.subsets:
        subset = args.work / f"subset-{n}"
        subset.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            link = subset / f"case_{i:04d}"
            if not link.exists():
                link.symlink_to(data / f"case_{i:04d}", target_is_directory=True)
        config = args.work / "prep.toml"
        config.write_text(CONFIG)
        with tempfile.TemporaryDirectory(dir=args.work) as cache:
            first = _child(subset, config, args.spacing, Path(cache), read=False)
            again = _child(subset, config, args.spacing, Path(cache), read=True)
        row = {
            "cases": first["cases"],
            "first_build_s": round(first["build_s"], 1),
            "s_per_case": round(first["build_s"] / first["cases"], 2),
            "first_peak_rss_mb": round(first["peak_rss_mb"]),
            "cached_build_s": round(again["build_s"], 1),
            "read_train_volumes_s": round(again["read_s"], 1),
            "cached_peak_rss_mb": round(again["peak_rss_mb"]),
            "volume_shape": "x".join(map(str, first["shape"])),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    load = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"rows": rows, "spacing": args.spacing, "load_1m": load}, indent=2) + "\n"
    )
    lines = [
        "# Preparing BraTS-sized volumes for 3D runs",
        "",
        f"`python benchmarks/volume_prep.py --cases {args.cases} --subsets "
        f"{' '.join(map(str, args.subsets))} --spacing {args.spacing}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, one thread per process; load "
        f"average {load:.1f} at the end (the machine is shared: times are upper bounds).",
        "",
        "Generated cases of the real size (240 x 240 x 155, int16, gzip NIfTI, brain mask,",
        "tumour label), each different. *first*: a fresh process, empty cache (read, check,",
        "normalise, crop, resample, write the cache); *cached*: a fresh process building",
        "from the cache, then reading every training volume once (memory-mapped).",
        "",
        "| cases | first build (s) | s / case | first peak RSS (MB) | cached build (s) "
        "| read train volumes (s) | cached peak RSS (MB) | volume (z x y x x) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cases']} | {r['first_build_s']} | {r['s_per_case']} | "
            f"{r['first_peak_rss_mb']} | {r['cached_build_s']} | {r['read_train_volumes_s']} "
            f"| {r['cached_peak_rss_mb']} | {r['volume_shape']} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
