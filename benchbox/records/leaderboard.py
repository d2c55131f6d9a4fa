"""The only code that reads and writes leaderboard CSVs.

A leaderboard row is a projection of a run record. Columns come in a fixed order:

1. identity: ``run_id, time, dataset, task, fusion, segmenter, loss, fusion_loss,
   augment, postprocess, tta, teacher, distill, seed, data_seed, fold, preset,
   fusion_epochs, epochs, selected_epoch, select_metric, select_value, image_size, amp,
   device, world_size`` (the epoch whose weights were tested, chosen on the validation
   split by ``select_metric``, e.g. ``val_dice``, worth ``select_value``);
2. metrics: the summary columns of the run, in the order the metric suite gives them
   (fusion metrics, then segmentation metrics per region with their empty-case counts);
3. cost and provenance: ``train_img_s, infer_img_s, fusion_params, seg_params,
   fusion_gflops, seg_gflops, wall_s, config_hash, benchbox_version, torch_version,
   python_version, plugin_versions``.

Columns that need a definition:

* ``image_size``: the side of the square 2D training slices (``--image-size``); in a
  3D run, the 3D phantom's in-plane size, and empty on scans, which keep their own grid
  (``patch_size`` and ``spacing`` describe a 3D run's input).

* ``teacher``: the run folder name of the run this one was distilled from
  (``--teacher``), empty otherwise; ``distill``: its distillers, their options and
  ``--distill-weight`` unless 1 (``logits(temperature=2) x0.5``, see
  :func:`benchbox.engine.distill.describe`), empty without a teacher.

* ``device``: the device model, e.g. ``AMD EPYC 7B13 (2 logical cores, 2 torch
  threads)`` or the GPU's name (:func:`benchbox.engine.device.device_name`).
* ``data_seed``: the seed of the dataset (``--data-seed``: the synthetic images and the
  splits). Case ids such as ``test-00000`` name different images under different data
  seeds, so ``benchbox compare`` pairs cases only within one data seed
  (:mod:`benchbox.analysis.compare`). Empty in rows written before it was recorded.
* ``world_size``: the processes that trained the run together (DistributedDataParallel
  under ``torchrun``, see :mod:`benchbox.engine.distributed`); 1 for a single process, empty in
  rows written before it was recorded. ``device`` is rank 0's.
* ``train_img_s``: training images per second of the run's main stage (the joint
  stage; the segmentation stage with ``--fusion none``; the fusion stage of a
  fusion-only run), its first steps excluded (:func:`benchbox.engine.train.excluded_steps`).
  A step runs from the end of the previous one: loading, forward, loss, backward and
  optimizer step. In a distributed run the images of every process count (global
  images/s, timed by rank 0). The fusion pre-training stage's figure is in the run's
  ``metrics.json`` (``throughput.stage_img_s``).
* ``infer_img_s``: images per second of the forward passes over the test split (fusion
  and segmenter, under ``torch.inference_mode``), after one untimed warm-up pass;
  loading and scoring are not counted.

A file keeps the columns of its first row; a later row with new metric columns adds
them before the trailing block, and older rows hold empty cells there.

Appends take a file lock and replace the file atomically (:mod:`benchbox.records.atomic`):
concurrent runs lose no row, an interrupted write or a full disk leaves no half row, and
the file keeps its mode.

A leaderboard that does not parse is never appended to: a torn last row, a row with
more or fewer fields than the header, a file whose header is not a leaderboard's (it
must start with ``run_id``, or ``time`` for a throughput file) or that is not UTF-8
text. :func:`append_row` raises a :class:`~benchbox.errors.DataError` naming the file
and the line and changes neither file; a run that meets one fails, with that reason in
its ``status.json`` and no row anywhere. Rewriting such a file would make its damage
look valid (a torn row padded with empty fields, a stranger's columns merged in), so
repairing it or moving it aside is left to the user.

Per-case results travel with the leaderboard in a companion file beside it,
``<dataset>.cases.csv`` (:func:`cases_path`): one row per test case of every run, keyed
by ``run_id`` and ``case_id``, then the per-case metric columns in first-seen order.
It is appended under the leaderboard's lock, before the leaderboard row, so a run's
leaderboard row always has its cases; both files are written and synced before either
is renamed, so only a failure between the two renames can leave cases of a run that has
no row, which readers ignore. ``benchbox compare`` and
``benchbox report`` work from these two files alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbox.errors import DataError, WriteError
from benchbox.records import atomic

if TYPE_CHECKING:
    from benchbox.hooks.registry import Registry

__all__ = [
    "CASE_KEYS",
    "LEADING",
    "SPEED_COLUMNS",
    "THROUGHPUT_LEADING",
    "THROUGHPUT_TRAILING",
    "TRAILING",
    "append_row",
    "cases_path",
    "headline_columns",
    "leaderboard_path",
    "order_columns",
    "read",
    "read_cases",
]

LEADING: tuple[str, ...] = (
    "run_id",
    "time",
    "dataset",
    "task",
    "fusion",
    "segmenter",
    "loss",
    "fusion_loss",
    "augment",
    "postprocess",
    "tta",
    "teacher",
    "distill",
    "seed",
    "data_seed",
    "fold",
    "preset",
    "fusion_epochs",
    "epochs",
    "selected_epoch",
    "select_metric",
    "select_value",
    "image_size",
    "patch_size",
    "spacing",
    "amp",
    "device",
    "world_size",
)
TRAILING: tuple[str, ...] = (
    "train_img_s",
    "infer_img_s",
    "peak_mem_mb",
    "fusion_params",
    "seg_params",
    "fusion_gflops",
    "seg_gflops",
    "wall_s",
    "config_hash",
    "benchbox_version",
    "torch_version",
    "python_version",
    "plugin_versions",
)


#: ``leaderboards/throughput-<device type>.csv``, written by ``benchbox bench``
#: (:mod:`benchbox.bench.measure` defines each column): identity and settings first ...
THROUGHPUT_LEADING: tuple[str, ...] = (
    "time",
    "fusion",
    "segmenter",
    "image_size",
    "patch_size",
    "requested_batch_size",
    "precision",
    "channels_last",
    "compile",
    "device",
    "device_type",
    "threads",
    "warmup_steps",
    "timed_steps",
)
#: ... then the measurements (``train_*`` and ``infer_*`` per phase) and provenance last.
THROUGHPUT_TRAILING: tuple[str, ...] = (
    "fusion_params",
    "seg_params",
    "fusion_gflops",
    "seg_gflops",
    "mem_method",
    "note",
    "load_1m",
    "torch_version",
    "benchbox_version",
    "python_version",
)


def leaderboard_path(out: str | Path, dataset: str) -> Path:
    return Path(out) / "leaderboards" / f"{dataset}.csv"


def order_columns(
    existing: Sequence[str],
    row: Mapping[str, Any],
    leading: Sequence[str] = LEADING,
    trailing: Sequence[str] = TRAILING,
) -> list[str]:
    """The header after adding ``row``: fixed blocks, metric columns in first-seen order."""
    fixed = set(leading) | set(trailing)
    metrics = [c for c in existing if c not in fixed]
    metrics += [c for c in row if c not in fixed and c not in metrics]
    return [*leading, *metrics, *trailing]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # NumPy's float64 too, written as a plain number
        return repr(round(float(value), 6))
    return str(value)


CASE_KEYS: tuple[str, ...] = ("run_id", "case_id")


def cases_path(path: str | Path) -> Path:
    """The per-case companion of a leaderboard: ``synthetic.csv`` -> ``synthetic.cases.csv``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.cases.csv")


def _read_csv(path: Path, key: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a file about to be appended to, or ``[], []`` for none.

    The file must be one this module writes: its header starts with ``key`` and names
    each column once, every row has a ``key`` value and one field per column, and the
    file ends with a line end (every write does).

    Raises:
        DataError: it does not, naming the file and the line.
    """
    if not (path.exists() and path.stat().st_size):
        return [], []

    def damaged(line: int, problem: str) -> DataError:
        return DataError(
            f"not appending to {path}: line {line} {problem}, so the file is damaged or "
            "not a leaderboard; repair it or move it aside"
        )

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise damaged(line, "is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        if not header or header[0] != key:
            first = header[0] if header else ""
            raise damaged(1, f"is not a leaderboard header (it starts {first[:40]!r}, not {key!r})")
        if len(set(header)) != len(header) or "" in header:
            raise damaged(1, "names a column twice or leaves one unnamed")
        records: list[dict[str, str]] = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise damaged(
                    reader.line_num, f"has {len(fields)} fields where the header has {len(header)}"
                )
            if not fields[0]:
                raise damaged(reader.line_num, f"has no {key}")
            records.append(dict(zip(header, fields, strict=True)))
    except csv.Error as exc:
        raise damaged(reader.line_num, f"does not parse ({exc})") from None
    if not text.endswith("\n"):
        raise damaged(reader.line_num, "is cut short (the file does not end with a line end)")
    return header, records


def _csv_text(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """A CSV of ``rows`` (already formatted strings) under ``columns``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for record in rows:
        writer.writerow({k: record.get(k, "") or "" for k in columns})
    return buffer.getvalue()


def _cases_text(path: Path, run_id: str, cases: Sequence[Mapping[str, Any]]) -> str:
    """The companion file with a run's per-case rows appended (caller holds the lock)."""
    header, records = _read_csv(path, CASE_KEYS[0])
    columns = [*CASE_KEYS, *(c for c in header if c not in CASE_KEYS)]
    for case in cases:
        columns += [c for c in case if c not in columns]
    new = [
        {**{k: _format(v) for k, v in case.items() if not _missing(v)}, "run_id": run_id}
        for case in cases
    ]
    for record in new:
        if not record.get("case_id"):
            raise ValueError(f"run {run_id}: a per-case row has no case_id")
    return _csv_text(columns, [*records, *new])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def append_row(
    path: str | Path,
    row: Mapping[str, Any],
    timeout: float = 60.0,
    cases: Sequence[Mapping[str, Any]] | None = None,
    *,
    leading: Sequence[str] = LEADING,
    trailing: Sequence[str] = TRAILING,
) -> Path:
    """Append one row, atomically and safely against concurrent writers.

    The files keep their mode (a new one gets the umask's default).

    Args:
        path: the leaderboard CSV.
        row: the run's leaderboard row; ``row["run_id"]`` keys its cases.
        timeout: seconds to wait for the lock.
        cases: the run's per-case results (one mapping per case, with a ``case_id``),
            appended to :func:`cases_path` under the same lock, before the row.
        leading, trailing: the file's fixed column blocks, a run leaderboard's by
            default (:data:`THROUGHPUT_LEADING` and :data:`THROUGHPUT_TRAILING` for
            ``benchbox bench``); other columns go between them.

    Raises:
        DataError: the leaderboard or its companion is damaged (a torn row, a row with
            too many fields, not a leaderboard at all); neither file is changed.
        WriteError: a file could not be written (e.g. a full disk); the leaderboard is
            unchanged.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    lock = str(path) + ".lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(lock, timeout=timeout):
            header, records = _read_csv(path, leading[0])
            columns = order_columns(header, row, leading, trailing)
            board = _csv_text(columns, [*records, {k: _format(row.get(k)) for k in columns}])
            more = None
            if cases is not None:
                more = _cases_text(cases_path(path), str(row["run_id"]), cases)
            # Both files are written and synced before either is renamed, the cases
            # first: a full disk leaves neither changed.
            with atomic.atomic_open(path, newline="") as fh:
                fh.write(board)
                atomic.sync(fh)
                if more is not None:
                    atomic.write_text(cases_path(path), more)
    except Timeout:
        raise WriteError(
            f"could not write {path}: its lock {lock} was held by another process for {timeout:g} s"
        ) from None
    except OSError as exc:  # the lock file or the folder: a full disk, no permission
        if exc.errno is None:
            raise
        raise atomic.write_error(exc, path) from exc
    return path


def read(path: str | Path) -> Any:
    """The leaderboard as a pandas DataFrame.

    Raises:
        DataError: the file is not a readable CSV (truncated, not text, ...).
    """
    return _read_frame(path)


def _read_frame(path: str | Path, **kwargs: Any) -> Any:
    """``pandas.read_csv``, with a broken file reported as the user's :class:`DataError`."""
    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable leaderboard CSV ({first})") from None


def read_cases(path: str | Path) -> Any:
    """The per-case companion of the leaderboard ``path`` as a pandas DataFrame.

    ``run_id`` and ``case_id`` are read as strings (a case id ``007`` stays ``007``).

    Raises:
        DataError: the leaderboard has no companion file (rows appended before per-case
            results were kept).
    """
    companion = cases_path(path)
    if not companion.is_file():
        raise DataError(
            f"{path} has no per-case results beside it ({companion.name}); rows appended "
            "by benchbox run since per-case results are kept have them, re-run its methods"
        )
    return _read_frame(companion, dtype={k: str for k in CASE_KEYS})


#: The speed columns :func:`compare` shows after the headline metrics.
SPEED_COLUMNS = ("train_img_s", "infer_img_s")


def headline_columns(
    columns: Sequence[str],
    task: str | None = None,
    registry: Registry | None = None,
    top: int = 0,
) -> list[str]:
    """The metric columns among ``columns`` that tables show by default.

    A metric says it belongs there when it is registered with ``headline=N`` (its
    place, 1 first), and a metric with a dict result with ``headline_key`` (the one key
    shown, e.g. ``mean`` for ``ssim_mean``); see ``register_metrics`` in
    :mod:`benchbox.hookspecs` and :func:`benchbox.metrics.suite.headline_metrics`.
    Fusion metrics come first, then segmentation metrics (every region's column), each
    by place, then in the order of ``columns``; ``task`` keeps one task's only, ``top``
    the metrics placed ``1..top``. Standard-deviation columns are left out.
    """
    from benchbox.metrics.suite import headline_metrics

    tasks = ("fusion", "segmentation") if task is None else (task,)
    order = {c: i for i, c in enumerate(columns) if not c.endswith("_std")}
    chosen: dict[str, tuple[int, int, int]] = {}
    for t in tasks:
        for entry in headline_metrics(t, registry, top):
            stem = entry.name
            if entry.info.get("headline_key"):
                stem += f"_{entry.info['headline_key']}"
            seg = t == "segmentation"
            for column, position in order.items():
                # segmentation metrics have one column per region: <stem>_<region>
                if column.startswith(stem + "_") if seg else column == stem:
                    key = (tasks.index(t), entry.info["headline"], position)
                    chosen.setdefault(column, key)
    return sorted(chosen, key=chosen.__getitem__)


def completed_runs(folder: str | Path) -> dict[str, str]:
    """The runs recorded in the run leaderboards of ``folder``: config hash -> run id.

    A row is appended only when its run has completed, so these are the completed runs
    (the last row of a hash when it has several). Files without a ``config_hash``
    column (``benchbox bench``'s throughput files) and the per-case companions are left
    out; a missing folder has none.

    Raises:
        DataError: a leaderboard cannot be read (not text, no permission).
    """
    from benchbox.errors import DataError

    found: dict[str, str] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.csv")):
        if path.name.endswith(".cases.csv"):
            continue
        try:
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if "config_hash" not in (reader.fieldnames or []):
                    continue
                for row in reader:
                    config_hash = (row.get("config_hash") or "").strip()
                    if config_hash:
                        found[config_hash] = (row.get("run_id") or "").strip()
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            raise DataError(f"{path}: cannot read the runs it records ({reason})") from None
    return found
