"""Two ways of predicting finished runs' validation cases, paired run by run.

Shared by ``postprocess_selection.py`` (raw labels or the largest component) and
``tta_selection.py`` (one pass or ``--tta flip``): each run's selected checkpoint is
loaded (:func:`benchbox.engine.restore.load_run`), its training dataset reopened with the
recorded parameters, and the **validation** split scored by
:func:`benchbox.engine.selection.validate`, the function that selected the checkpoint. The test
split is not opened. A script builds one row per run with :func:`val_scores` and
reports the pairs with :func:`paired_lines`; :func:`score_runs` does the rest.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from scipy.stats import wilcoxon

from benchbox.engine.device import resolve_amp
from benchbox.engine.inference import Predictor
from benchbox.engine.restore import load_run, open_training_dataset
from benchbox.engine.selection import validate

METRICS = ("dice", "hd95")


class RunOpener:
    """Loads runs and their training datasets; consecutive runs on the same dataset
    (fold, image size) share one opened dataset, since opening volumes is the slow part."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._dataset: Any = None

    def __call__(self, run_dir: Path) -> tuple[Any, Any]:
        run = load_run(run_dir)
        key = _dataset_key(run_dir)
        if key != self._key:
            self._key, self._dataset = key, open_training_dataset(run.config)
        return run, self._dataset


def _dataset_key(run_dir: Path) -> str:
    config = json.loads((run_dir / "config.json").read_text())
    return json.dumps([config["dataset"], config["data_opts"], config["image_size"]])


def describe(dataset: Any) -> dict[str, object]:
    """The fold and validation cases of a run's dataset, for its row."""
    described = dataset.config()
    return {"fold": described.get("fold", ""), "val_cases": ";".join(described["splits"]["val"])}


def val_scores(
    run: Any, dataset: Any, *, tta: str = "none", postprocess: Any = None
) -> dict[str, float]:
    """The validation Dice and HD95 of ``run``'s checkpoint, predicted on the CPU with
    ``tta`` and ``postprocess`` and the run's own evaluation settings."""
    cpu = torch.device("cpu")
    predictor = Predictor(run.fusion, run.segmenter, cpu, resolve_amp("off", cpu), tta=tta)
    scores = validate(
        dataset,
        predictor,
        batch_size=run.config.eval_batch_size,
        nsd_tolerance=run.config.nsd_tolerance,
        max_cases=run.config.max_val_cases,
        postprocess=postprocess,
    )
    return {metric: scores[metric] for metric in METRICS}


def paired_lines(table: pd.DataFrame, base: str, other: str, names: Sequence[str]) -> list[str]:
    """One summary line per metric: the ``<metric>_<base>`` and ``<metric>_<other>``
    columns, their mean difference, how many runs ``other`` improves (higher Dice, lower
    HD95) and a Wilcoxon signed-rank test over the runs; ``names`` label the two."""
    lines = []
    for metric in METRICS:
        a, b = table[f"{metric}_{base}"], table[f"{metric}_{other}"]
        diff = b - a
        better = int((diff > 0).sum()) if metric == "dice" else int((diff < 0).sum())
        p = wilcoxon(b, a).pvalue if len(table) > 1 and diff.any() else float("nan")
        lines.append(
            f"- val {metric}: {names[0]} {a.mean():.4f}, {names[1]} {b.mean():.4f}, "
            f"difference {diff.mean():+.4f} (median {statistics.median(diff):+.4f}); "
            f"{names[1]} better in {better} of {len(table)} runs; Wilcoxon signed-rank "
            f"p = {p:.2g}"
        )
    return lines


def score_runs(
    runs: Sequence[Path],
    score_run: Callable[[Path, RunOpener], dict[str, object]],
    report: Callable[[pd.DataFrame], str],
    out: str | Path,
) -> None:
    """Score every run (grouped by dataset, so each is opened once), then write
    ``<out>.csv`` (one row per run) and ``<out>.md`` (``report``), and print it."""
    opener = RunOpener()
    rows = []
    for run_dir in sorted(runs, key=_dataset_key):
        rows.append(score_run(run_dir, opener))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out = Path(out)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(report(table))
    print(report(table))
