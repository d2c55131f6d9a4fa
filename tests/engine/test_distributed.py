"""One run across processes (DDP): the sharded batches, the seeds, the batch rule, and
real 2-process runs on the CPU (gloo) compared with the single-process run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from benchbox.engine import distributed
from benchbox.engine.train import make_loader
from benchbox.errors import ConfigError


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize(("n", "batch", "world"), [(20, 8, 2), (21, 8, 4), (6, 8, 2)])
def test_the_ranks_shares_make_the_single_process_batches(n, batch, world):
    data = _Indices(n)
    single = make_loader(data, batch, shuffle=True, seed=3, drop_last=True)
    ranks = [
        make_loader(data, batch, shuffle=True, seed=3, drop_last=True, rank=r, world_size=world)
        for r in range(world)
    ]
    assert all(len(loader) == len(single) for loader in ranks)
    for _epoch in range(3):  # reshuffled every epoch, identically on every rank
        expected = [b.tolist() for b in single]
        shares = [[b.tolist() for b in loader] for loader in ranks]
        got = [[i for r in range(world) for i in shares[r][k]] for k in range(len(expected))]
        assert got == expected
        for k in range(len(expected)):  # contiguous, equal and disjoint shares
            assert {len(shares[r][k]) for r in range(world)} == {len(expected[k]) // world}


def test_rank_seeds():
    assert distributed.rank_seed(7, 0) == 7
    seeds = {distributed.rank_seed(7, r) for r in range(1, 5)}
    assert len(seeds) == 4 and 7 not in seeds
    assert distributed.rank_seed(7, 1) == distributed.rank_seed(7, 1)
    assert distributed.rank_seed(7, 1) != distributed.rank_seed(8, 1)


def test_the_global_batch_must_split_evenly():
    distributed.check_batches(16, 100, 2)
    distributed.check_batches(16, 6, 2)  # the whole split (6) is the one batch
    distributed.check_batches(15, 100, 1)
    with pytest.raises(ConfigError, match="--batch-size 15 does not split evenly over 2"):
        distributed.check_batches(15, 100, 2)
    with pytest.raises(ConfigError, match=r"training split \(5 images"):
        distributed.check_batches(16, 5, 2)


def test_environment(monkeypatch):
    for key in distributed.ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    assert distributed.env_world() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.env_world() == (1, 2, 1, 2)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="inconsistent"):
        distributed.env_world()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="malformed"):
        distributed.env_world()


def test_device_rules():
    assert distributed.resolve_device("cpu", 1, 2) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert distributed.resolve_device("auto", 1, 2) == torch.device("cpu")


# -- real processes: torchrun with 2 CPU processes (gloo) ------------------------------
#: A run whose loss is a mean over images (per-image Dice) and whose models have no
#: BatchNorm (GroupNorm), so that 2 processes with half a batch each compute the
#: single-process step: see benchbox.engine.distributed. 2 fusion + 2 joint steps.
EQUIVALENT = [
    "--fusion", "dual", "--seg", "attunet", "--image-size", "32", "--batch-size", "4",
    "--fusion-epochs", "1", "--epochs", "1", "--warmup-steps", "0", "--examples", "1",
    "--data-opt", "n_train=8", "--data-opt", "n_val=2", "--data-opt", "n_test=4",
    "--fusion-opt", "norm=group", "--seg-opt", "norm=group", "--loss-opt", "batch=false",
    "--device", "cpu", "--amp", "off", "--deterministic",
]  # fmt: skip


def _benchbox(*args: str, nproc: int = 0, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m benchbox ARGS`` with one torch thread per process; with ``nproc``
    under ``torchrun --standalone --nproc-per-node NPROC``. A hang fails the test at
    ``timeout`` instead of blocking the suite."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.run(
        [sys.executable, *(launcher if nproc else []), "-m", "benchbox", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        timeout=timeout,
        check=False,
    )


def _record(out: Path) -> tuple[Path, dict[str, Any]]:
    (run,) = (out / "runs").iterdir()
    return run, json.loads((run / "metrics.json").read_text())


@pytest.mark.integration
def test_two_processes_train_the_single_process_run(tmp_path, pinned_threads, equivalent_runs):
    """Completes, writes one row (world size 2), and matches the single-process run.

    Tolerances: the two runs differ only in the order of floating-point sums (each rank
    reduces half the batch, then DDP averages the two gradients), i.e. float32 rounding,
    relative 1e-7 per operation, and that rounding differs between CPUs (oneDNN and MKL
    pick other kernels on AMD and Intel). So the continuous quantities are compared
    tightly: the losses to a relative 1e-5 (measured: 2e-8 on Intel Xeon and AMD EPYC).
    AdamW's first steps move each weight by about ``lr`` times the sign of its gradient,
    so a weight whose gradient is rounding noise may step the other way: the weights
    are only bounded by ``2 * lr * steps`` (measured: 3e-4 at most), and their mean
    difference must stay at the rounding level (below 1e-5). The outputs and the test
    metrics are compared by :func:`conftest.assert_equivalent_runs`: outputs to 1e-4
    (measured 2e-6), continuous metrics to a relative 1e-4, and the metrics that jump
    when one pixel crosses a histogram bin or an argmax tie (EN, MI, Nabf, Dice, HD95)
    within what the pixels near those thresholds can change (on AMD EPYC one fused
    pixel of 4096 crossed a bin: EN moved by 1.4e-4, relative 2e-5).

    Breaking the sharding (every rank training on rank 0's half of each batch) fails
    the epoch losses, the weights and the outputs by orders of magnitude.
    """
    from benchbox.records import leaderboard

    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    ddp_proc = _benchbox("run", *EQUIVALENT, "-o", str(ddp_out), nproc=2)
    assert ddp_proc.returncode == 0, ddp_proc.stdout[-3000:] + ddp_proc.stderr[-3000:]
    single_proc = _benchbox("run", *EQUIVALENT, "-o", str(single_out))
    assert single_proc.returncode == 0, single_proc.stderr[-3000:]
    # Rank 0 alone reports: one table.
    assert ddp_proc.stdout.count("tested the weights of") == 1

    board = leaderboard.read(ddp_out / "leaderboards" / "synthetic.csv")
    assert len(board) == 1 and int(board["world_size"].iloc[0]) == 2
    cases = leaderboard.read_cases(ddp_out / "leaderboards" / "synthetic.csv")
    assert len(cases) == 4 and set(cases["run_id"]) == {board["run_id"].iloc[0]}
    ddp_run, ddp = _record(ddp_out)
    single_run, single = _record(single_out)
    assert json.loads((ddp_run / "status.json").read_text())["status"] == "completed"
    config = json.loads((ddp_run / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2
    assert config["distributed"]["batch_size_per_rank"] == 2
    single_config = json.loads((single_run / "config.json").read_text())
    assert config["config_hash"] == single_config["config_hash"]  # the same experiment
    assert single_config["distributed"]["world_size"] == 1
    assert ddp["throughput"]["world_size"] == 2
    # Global images: every step counts the whole batch of 4, whatever the processes.
    assert [s["images"] for s in ddp["stages"]] == [s["images"] for s in single["stages"]]

    for a, b in zip(ddp["stages"], single["stages"], strict=True):
        assert a["epoch_losses"] == pytest.approx(b["epoch_losses"], rel=1e-5)
    assert ddp["selection"]["epoch"] == single["selection"]["epoch"]

    w_ddp = torch.load(ddp_run / "checkpoint.pt", weights_only=True)
    w_single = torch.load(single_run / "checkpoint.pt", weights_only=True)
    steps = sum(s["steps"] for s in single["stages"])
    lr = single_config["lr"]
    assert single_config["fusion_lr"] == lr
    diffs = torch.cat(
        [
            (w_ddp[m][k].double() - w_single[m][k].double()).abs().flatten()
            for m in w_single
            for k in w_single[m]
        ]
    )
    assert 0 < diffs.max() <= 2 * lr * steps
    assert diffs.mean() < 1e-5
    equivalent_runs(ddp_run, single_run)


@pytest.mark.integration
def test_a_bad_option_under_torchrun_fails_on_every_rank(tmp_path):
    """Every rank fails before joining the group, with one clear line (the launcher may
    stop the slower rank before it prints its own), and nothing waits: no hang."""
    proc = _benchbox("run", "--fusion", "dul", "-o", str(tmp_path), nproc=2, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if "unknown fusion 'dul'" in ln]
    assert 1 <= len(lines) <= 2, proc.stderr[-3000:]
    for line in lines:  # rank 1 names itself
        assert line.startswith(("error: unknown fusion", "error: rank 1 of 2: unknown fusion"))
    assert "benchbox/" not in proc.stderr  # no traceback from benchbox's code
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.integration
@pytest.mark.slow  # three processes spawned (the parent and two ranks) that import torch
def test_nproc_starts_the_processes_and_reports_a_failure_in_one_line(tmp_path):
    """``benchbox run --nproc 2``: a batch that does not split fails on every rank; the
    launcher's output (tracebacks of the ranks) is replaced by that one line."""
    cmd = [sys.executable, "-m", "benchbox", "run", "--nproc", "2", *EQUIVALENT]
    proc = subprocess.run(
        [*cmd, "--batch-size", "3", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=240,
        check=False,
    )
    assert proc.returncode == 1
    message = (
        "--batch-size 3 does not split evenly over 2 processes; the batch size is global, "
        "so use a multiple of 2"
    )
    # Named by rank only when rank 1 failed first and rank 0 was stopped before failing.
    assert proc.stderr.strip().splitlines() in (
        [f"error: {message}"],
        [f"error: rank 1 of 2: {message}"],
    ), proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


#: A run of 50 epochs under torchrun with 2 processes: long enough to be killed mid-run.
LONG_RUN = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
    "-m", "benchbox", "run", "--fusion", "mean", "--image-size", "32", "--batch-size", "4",
    "--epochs", "50", "--warmup-steps", "0", "--data-opt", "n_train=64",
    "--data-opt", "n_val=2", "--data-opt", "n_test=2",
]  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_a_rank_killed_mid_run_stops_the_run_without_a_hang(tmp_path):
    """Rank 1 is killed (as by the out-of-memory killer) during training: torchrun stops
    rank 0, which marks its run interrupted and writes no row, and everything exits."""
    log = tmp_path / "log.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*LONG_RUN, "-o", str(tmp_path / "out")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    try:
        deadline = time.monotonic() + 240
        while "epoch 1:" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        os.kill(_rank_pid(proc.pid, 1), signal.SIGKILL)
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = (tmp_path / "out" / "runs").iterdir()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] in ("interrupted", "failed"), status
    assert "distributed" in status["error"] or "lost the other processes" in status["error"]
    assert not (tmp_path / "out" / "leaderboards" / "synthetic.csv").exists()


def _rank_pid(launcher: int, rank: int) -> int:
    """The process of ``rank`` among the launcher's children (from their environment)."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no rank {rank} among {children}")


@pytest.mark.slow
def test_rank_0_killed_under_nproc_is_a_failed_run_with_the_signal(tmp_path):
    """``benchbox run --nproc 2``: rank 0 killed (as by the out-of-memory killer) cannot
    record its end; the launcher saw it die, so the run folder says failed with the
    signal (not running for ever), and the error is one line."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchbox", "run", "--nproc", "2", *LONG_RUN[8:], "-o", str(out)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        pid = None
        while pid is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            for path in out.glob("runs/*/status.json"):
                with contextlib.suppress(ValueError, OSError):
                    pid = json.loads(path.read_text())["pid"]
            time.sleep(0.5)
        time.sleep(2)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "SIGKILL" in err and len(err.strip().splitlines()) == 1, err
    (run,) = (out / "runs").iterdir()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed", status
    assert status["error"] == "rank 0 was killed by signal 9 (SIGKILL)"
