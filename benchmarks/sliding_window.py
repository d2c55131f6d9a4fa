"""Sliding-window inference of a BraTS volume: benchbox vs MONAI called directly.
Target: ratio >= 0.95.

    python benchmarks/sliding_window.py [--seg monai-segresnet] [--patch 48,48,48]
        [--spacing 2,2,2] [--overlap 0.5] [--sw-batch 2] [--rounds 5]
        [--out benchmarks/results/sliding_window]

The volume is a real BraTS case (``cases:configs/brats2015.toml``, its first test case)
preprocessed as a 3D run preprocesses it (``fit=none``, ``--spacing``), with FLAIR and
T1c stacked as the input channels (``--fusion none``). The network is the segmenter
built by :func:`benchbox.engine.models.build` for that run (untrained: speed only).

* benchbox: :meth:`benchbox.engine.inference.Predictor.volume`, what ``benchbox predict``
  (and the test split of ``benchbox run``) calls per volume, file I/O excluded: the
  windows, batching, Gaussian blending, softmax and timing of a 3D run.
* MONAI: ``monai.inferers.sliding_window_inference`` on the same network, windows,
  batch, overlap and Gaussian weighting, the softmax in its predictor function, under
  ``torch.inference_mode()``.

The two alternate ``--rounds`` times (ABBA order); medians are compared: ratio = MONAI's
time / benchbox's (1.0: no overhead). Both outputs are compared too (max difference).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_speed import timed
from session import Session, abba

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seg", default="monai-segresnet")
    parser.add_argument("--patch", default="48,48,48")
    parser.add_argument("--spacing", default="2,2,2")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--sw-batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/sliding_window")
    args = parser.parse_args()
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from benchbox.config.layers import resolve
    from benchbox.engine.device import resolve_amp
    from benchbox.engine.inference import Predictor
    from benchbox.engine.models import build, check, dataset_kwargs
    from benchbox.engine.windows import SIGMA_SCALE, Windows
    from benchbox.hooks.manager import get_registry

    with tempfile.TemporaryDirectory() as out:
        config = resolve(
            None,
            None,
            {
                "dataset": f"cases:{ROOT / 'configs/brats2015.toml'}",
                "fusion": "none",
                "seg": args.seg,
                "patch_size": args.patch,
                "spacing": args.spacing,
                "overlap": args.overlap,
                "sw_batch_size": args.sw_batch,
                "data_opts": {"target": "whole-tumour"},
                "out": out,
            },
        )
    registry = get_registry()
    entries = check(config, registry)
    dataset = entries["dataset"].build(**dataset_kwargs(entries["dataset"], config))
    volume = dataset.volumes("test")[0]
    torch.manual_seed(0)
    net = build(config, entries, dataset.num_classes, losses=False).segmenter.eval()
    cpu = torch.device("cpu")
    windows = Windows.of(config)
    assert windows is not None
    a = torch.from_numpy(np.array(volume.a, dtype=np.float32))[None, None]
    b = torch.from_numpy(np.array(volume.b, dtype=np.float32))[None, None]
    predictor = Predictor(None, net, cpu, resolve_amp("off", cpu), windows=windows)
    predictor.volume(a, b)  # its warm-up window and a first pass, untimed

    def benchbox() -> torch.Tensor:
        _, probs = predictor.volume(a, b)
        assert probs is not None
        return probs

    def monai() -> torch.Tensor:
        with torch.inference_mode():
            out = sliding_window_inference(
                torch.cat([a, b], dim=1),
                windows.size,
                windows.batch,
                lambda x: torch.softmax(net(x).float(), dim=1),
                overlap=windows.overlap,
                mode="gaussian",
                sigma_scale=SIGMA_SCALE,
            )
        assert isinstance(out, torch.Tensor)
        return out

    diff = float((benchbox() - monai()).abs().max())
    session = Session()
    times = abba(
        {"benchbox": lambda: timed(benchbox)[0], "monai": lambda: timed(monai)[0]},
        args.rounds,
        lambda r, got: print(
            f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in got.items())
        ),
    )
    ratio = statistics.median(times["monai"]) / statistics.median(times["benchbox"])
    report = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "volume": {"case": volume.case_id, "shape": list(volume.a.shape)},
        **session.fields(),
        "seconds": times,
        "max_abs_diff": diff,
        "ratio_monai_over_benchbox": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    s = report["settings"]
    rows = "".join(
        f"| {i + 1} | {x:.2f} | {y:.2f} |\n"
        for i, (x, y) in enumerate(zip(times["benchbox"], times["monai"], strict=True))
    )
    text = f"""# Sliding-window inference: benchbox vs MONAI directly

`python benchmarks/sliding_window.py --seg {s["seg"]} --patch {s["patch"]} --spacing \
{s["spacing"]} --overlap {s["overlap"]} --sw-batch {s["sw_batch"]} --rounds {s["rounds"]}` \
on {report["cpu"]}, {report["cores"]} cores, torch {report["torch"]} \
({report["torch_threads"]} threads): BraTS case {volume.case_id} preprocessed for a 3D run \
({" x ".join(map(str, volume.a.shape))} voxels at {s["spacing"]} mm), FLAIR and T1c \
stacked (`--fusion none`), {s["seg"]} untrained, float32, Gaussian weighting, no file I/O.
Alternating rounds (ABBA order).

| round | benchbox `Predictor.volume` (s) | MONAI `sliding_window_inference` (s) |
|---|---|---|
{rows}
Ratio of the medians (MONAI / benchbox): **{ratio:.3f}** (target at least 0.95). The two
probability volumes differ by at most {diff:.1e}.

Load average (1, 5, 15 min) before: {report["load_before"]}, after: {report["load_after"]}.
"""
    args.out.with_suffix(".md").write_text(text)
    print(f"ratio {ratio:.3f}; wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
