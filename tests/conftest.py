"""Fixtures shared across the test tree (keep this file small)."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# A test run started in the background by a shell without job control (`cmd &`, nohup,
# some CI runners) inherits SIGINT ignored, and then neither `_thread.interrupt_main()`
# nor a SIGINT sent to a child `benchbox` process can act: the Ctrl-C tests would hang.
# Take Python's default Ctrl-C behaviour back, as an interactive run has it (children
# then start with SIGINT at its default too).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def shared_data() -> Callable[..., Path]:
    """``shared_data("aanlib", "CT-MRI")``: a folder of the real images, or a skip.

    The images live in ``$BENCHBOX_DATA`` (default ``../shared/data`` from the repo root,
    see :func:`benchbox.data.paths.data_root`); they are never copied into the repo.
    """
    from benchbox.data.paths import DATA_ENV, data_root

    def need(*parts: str) -> Path:
        path = data_root().joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real images not found: {path} (set {DATA_ENV} to the data folder)")
        return path

    return need


@pytest.fixture
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the preprocessing cache (``BENCHBOX_CACHE``) at a fresh temporary folder."""
    root = tmp_path_factory.mktemp("bbcache")
    monkeypatch.setenv("BENCHBOX_CACHE", str(root))
    return root


class _PickleTrap:
    """Unpickling this calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture
def pickle_trap() -> Callable[[Path], Any]:
    """``pickle_trap(marker)``: an object whose unpickling creates the file ``marker``.

    Put it in a would-be weights file to prove the loader never unpickles it.
    """
    return lambda marker: _PickleTrap(str(marker))


@pytest.fixture
def tta_modes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``--tta`` mode of every segmenter forward pass made while the test runs, in
    order (a spy on :func:`benchbox.engine.tta.segment` as the predictor calls it)."""
    from benchbox.engine import inference as predict

    modes: list[str] = []
    segment = predict.segment

    def spy(segmenter: Any, x: Any, mode: str = "none") -> Any:
        modes.append(mode)
        return segment(segmenter, x, mode)

    monkeypatch.setattr(predict, "segment", spy)
    return modes


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``disk_full("checkpoint.pt", "status.json")``: atomic writes of files with these
    names (``"*"``: every file) fail with ``OSError(ENOSPC)`` when their data is synced
    to the disk, as on a full disk; ``disk_full()`` with no name lifts it again."""
    from benchbox.records import atomic

    names: set[str] = set()
    real_sync = atomic._sync

    def sync(fd: int, tmp: Path) -> None:
        if "*" in names or any(tmp.name.endswith(f"-{name}") for name in names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_sync(fd, tmp)

    def full(*files: str) -> None:
        names.clear()
        names.update(files)

    monkeypatch.setattr(atomic, "_sync", sync)
    return full


def _torch_globals(torch: Any) -> dict[str, Any]:
    return {
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "dtype": torch.get_default_dtype(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "grad": torch.is_grad_enabled(),
    }


@pytest.fixture(autouse=True)
def _restore_locale() -> Any:
    """Give back the C library's character locale if a test (or a library it imports)
    changed it: Python decodes subprocess output with it."""
    import locale

    before = locale.setlocale(locale.LC_CTYPE)
    yield
    if locale.setlocale(locale.LC_CTYPE) != before:
        locale.setlocale(locale.LC_CTYPE, before)


@pytest.fixture(autouse=True)
def _restore_torch_globals() -> Any:
    """Give back every process-wide torch setting a test changed, directly or through a
    run (``--deterministic``, threads, default dtype, cuDNN flags, grad mode), so no test
    passes or fails because of the one before it."""
    import torch

    saved = _torch_globals(torch)
    yield
    if _torch_globals(torch) == saved:
        return
    torch.set_num_threads(saved["threads"])
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.set_default_dtype(saved["dtype"])
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.set_grad_enabled(saved["grad"])


@pytest.fixture
def pinned_threads(monkeypatch: pytest.MonkeyPatch) -> int:
    """One torch thread in this process and in every process it starts
    (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), set here rather than inherited, so the
    float rounding a test compares does not depend on how it was launched. The thread
    count is given back by :func:`_restore_torch_globals`."""
    import torch

    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, "1")
    torch.set_num_threads(1)
    return 1


# -- two runs that must compute the same experiment -------------------------------------
#: Max |difference| allowed between the fused images, and between the class
#: probabilities, of two runs that trained the same experiment in float32 with sums in
#: another order (DDP shards, channels-last kernels). Such runs differ by rounding that
#: AdamW's first steps can amplify (a weight with a noise-level gradient may step the
#: other way, by ``lr``): measured 2e-6 on Intel Xeon and AMD EPYC; a wrong shard or
#: unaveraged gradients move outputs by 1e-2 or more.
OUTPUT_TOLERANCE = 1e-4
#: Relative tolerance of the metrics that are continuous in the pixel values (SSIM,
#: VIF, Qabf, SD, ...): an output change of OUTPUT_TOLERANCE moves them far less.
CONTINUOUS_REL = 1e-4


def _run_outputs(run_dir: Path) -> list[dict[str, Any]]:
    """Each test sample of a 2D run, predicted again here from its checkpoint: the
    sources, fused image and class probabilities as float64 arrays."""
    import torch

    from benchbox.engine.device import resolve_amp
    from benchbox.engine.inference import Predictor
    from benchbox.engine.restore import load_run, open_training_dataset
    from benchbox.engine.train import make_loader

    run = load_run(run_dir)
    cpu = torch.device("cpu")
    predictor = Predictor(run.fusion, run.segmenter, cpu, resolve_amp("off", cpu))
    out = []
    dataset = open_training_dataset(run.config)
    for batch in make_loader(dataset.split("test"), 16, shuffle=False, seed=0):
        fused, _, probs = predictor(batch["a"], batch["b"])
        for i in range(batch["a"].shape[0]):
            out.append(
                {
                    "a": batch["a"][i, 0].double().numpy(),
                    "b": batch["b"][i, 0].double().numpy(),
                    "fused": None if fused is None else fused[i, 0].double().numpy(),
                    "probs": None if probs is None else probs[i].double().numpy(),
                }
            )
    return out


def _bin_edge_pixels(image: Any, margin: float) -> int:
    """Pixels within ``margin`` of an edge of the 256-bin histogram of EN and MI: the
    only ones whose bin an output change of at most ``margin`` can move."""
    import numpy as np

    def bins(x: Any) -> Any:
        return np.minimum((np.clip(x, 0, 1) * 256).astype(int), 255)

    return int((bins(image - margin) != bins(image + margin)).sum())


def _entropy_step(pixels: int) -> float:
    """The most one pixel moving to another bin changes an entropy over ``pixels``
    counts, in bits. With ``H = log2 N - (1/N) sum g(c)``, ``g(c) = c log2 c``, a move
    changes ``g`` of two counts by ``g(c+1) - g(c)`` in ``[0, log2 N + 1/ln 2]`` each,
    with opposite signs: ``|dH| <= (log2 N + 1/ln 2) / N``. A joint histogram's cell
    obeys the same bound, so MI (two source pairs, each ``H(F) - H(X, F)`` moving) moves
    by at most 4 of these per pixel, EN by 1."""
    import math

    return (math.log2(pixels) + 1 / math.log(2)) / pixels


def _nabf_step(case: dict[str, Any], margin: float) -> float:
    """The most Nabf can jump when the fused image moves by at most ``margin``: its
    artefact mask ``gF > max(gA, gB)`` flips only where the two are within the Sobel
    strength's change (at most ``8 sqrt 2 · margin``, the kernels' L1 norm being 8), and
    a flip there adds or removes at most ``(gA + gB)`` of that pixel over the sum."""
    import numpy as np

    from benchbox.metrics.filters import sobel_polar

    strength, _ = sobel_polar(np.stack([case["fused"], case["a"], case["b"]]))
    gf, ga, gb = strength
    near = np.abs(gf - np.maximum(ga, gb)) <= 8 * np.sqrt(2) * margin
    den = float((ga + gb).sum())
    return float((ga + gb)[near].sum()) / den if den > 0 else 0.0


def _label_ties(first: Any, second: Any, margin: float) -> int:
    """Pixels whose two most likely classes are within ``margin`` in ``second``: the
    only ones whose argmax an output change of ``margin / 2`` can flip. Every pixel
    whose label differs between the two must be one of them."""
    import numpy as np

    top = np.sort(second, axis=0)
    tied = top[-1] - top[-2] <= margin
    flipped = first.argmax(axis=0) != second.argmax(axis=0)
    assert not (flipped & ~tied).any(), "labels differ where no class probabilities tie"
    return int(tied.sum())


def assert_equivalent_runs(first: Path, second: Path) -> dict[str, Any]:
    """Assert that two finished 2D runs computed the same experiment up to float
    rounding, and return what was measured.

    Continuous quantities are compared tightly: the outputs of the two checkpoints on
    the test split (max |difference| at most :data:`OUTPUT_TOLERANCE`) and the
    continuous test metrics (relative :data:`CONTINUOUS_REL`). The metrics that jump
    when one pixel crosses a threshold (EN and MI: a histogram bin; Nabf: its artefact
    mask; every segmentation metric: the argmax) get the tolerance that the pixels near
    their thresholds can explain (see the ``_*_step`` functions); with no such pixel
    they must be equal.
    """
    import json
    import math

    import numpy as np

    records = [json.loads((p / "metrics.json").read_text())["summary"] for p in (first, second)]
    assert records[0].keys() == records[1].keys()
    outs = [_run_outputs(first), _run_outputs(second)]
    measured: dict[str, Any] = {"cases": len(outs[0])}
    assert len(outs[0]) == len(outs[1]) > 0
    jumps: dict[str, list[float]] = {"en": [], "mi": [], "nabf": []}
    ties = 0
    for key in ("fused", "probs"):
        pairs = [(x[key], y[key]) for x, y in zip(*outs, strict=True) if x[key] is not None]
        if not pairs:
            continue
        diff = max(float(np.abs(x - y).max()) for x, y in pairs)
        measured[f"{key}_max_abs_diff"] = diff
        assert diff <= OUTPUT_TOLERANCE, (key, diff)
        # The runs' own evaluations differ from these recomputations by rounding only:
        # twice the measured difference (and a floor) covers them.
        margin = 2 * diff + 1e-6
        for other, case in zip(outs[0], outs[1], strict=True):
            if key == "fused":
                pixels = case["fused"].size
                crossing = _bin_edge_pixels(case["fused"], margin)
                jumps["en"].append(crossing * _entropy_step(pixels))
                jumps["mi"].append(4 * crossing * _entropy_step(pixels))
                jumps["nabf"].append(_nabf_step(case, margin))
            else:
                ties += _label_ties(other["probs"], case["probs"], 2 * margin)
    measured["label_ties"] = ties
    n = len(outs[0])
    fusion = _fusion_columns(records[1])
    for key, value in records[1].items():
        got = records[0][key]
        stem = key.removesuffix("_std")
        if stem in jumps:
            # A mean moves by at most the mean of the cases' jumps; a sample std by at
            # most their 2-norm over sqrt(n - 1) (the centring is a projection).
            bound = (
                math.sqrt(sum(j * j for j in jumps[stem])) / math.sqrt(max(n - 1, 1))
                if key.endswith("_std")
                else sum(jumps[stem]) / n
            )
            tolerance = bound + CONTINUOUS_REL * abs(value) + 1e-12
            assert abs(got - value) <= tolerance, (key, got, value, tolerance)
        elif outs[1][0]["probs"] is not None and key not in fusion:
            # Segmentation metrics and counts read the argmax: equal label maps give
            # equal values; with near-ties only the labels were compared (above).
            if ties == 0:
                assert got == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert got == pytest.approx(value, rel=CONTINUOUS_REL, abs=1e-9), key
    return measured


def _fusion_columns(summary: dict[str, Any]) -> set[str]:
    """The fusion-metric columns of a summary (from the registered metrics)."""
    from benchbox.hooks.manager import get_registry

    names = [e.name for e in get_registry().list("metric") if e.info.get("task") == "fusion"]
    return {
        k
        for k in summary
        if any(k.removesuffix("_std") == m or k.startswith(m + "_") for m in names)
    }


@pytest.fixture
def equivalent_runs() -> Callable[[Path, Path], dict[str, Any]]:
    """:func:`assert_equivalent_runs`: two runs of one experiment agree up to rounding."""
    return assert_equivalent_runs


@pytest.fixture
def training_cli_run(tmp_path: Path) -> Callable[..., tuple[Any, Path]]:
    """``training_cli_run(args, out)``: ``benchbox run ARGS --out OUT`` in a subprocess,
    returned once it is training: its log shows the first epoch's line (a marker the run
    writes, not a guessed sleep). Returns the process (stdout and stderr go to
    ``out/run.log``) and the run folder; the process is killed at teardown if alive."""
    import subprocess
    import sys
    import time

    started: list[Any] = []

    def start(args: list[str], out: Path, timeout: float = 240) -> tuple[Any, Path]:
        out.mkdir(parents=True, exist_ok=True)
        log = out / "run.log"
        code = "import sys; from benchbox.cli import main; sys.exit(main())"
        with log.open("w") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, "run", *args, "--out", str(out)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "120"},
            )
        started.append(proc)
        deadline = time.monotonic() + timeout
        while " epoch 1: " not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the run did not reach its first epoch: {log.read_text()}")
            time.sleep(0.2)
        (run_dir,) = (out / "runs").iterdir()
        return proc, run_dir

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
