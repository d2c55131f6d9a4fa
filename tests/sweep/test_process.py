"""A run's worker process: killed, stopped, its end told and recorded, for both ways of
starting it (forked from the forkserver, or a fresh Python)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchbox import config as cfg
from benchbox.records.status import read_status
from benchbox.sweep import process
from benchbox.sweep.forkserver import ForkServer
from benchbox.sweep.job import Job
from benchbox.testing import tiny_run_settings

#: A run long enough to be caught running (it is stopped or killed long before its end).
LONG = {"seg": "none", "epochs": 200, "data_opts": {"synthetic": {"n_train": 64}}}


def _job(tmp_path: Path, **settings) -> Job:
    config = cfg.resolve(None, None, tiny_run_settings(out=str(tmp_path), **settings))
    return Job(
        index=0,
        config_hash=config.hash(),
        config=config.to_dict(),
        log_path=str(tmp_path / "run.log"),
        run_id=f"run-{config.seed}",
    )


def _running_pid(status: Path, deadline_s: float = 120.0) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            data = read_status(status)
        except (OSError, ValueError):
            data = {}
        if data.get("status") == "running":
            return int(data["pid"])
        time.sleep(0.05)
    raise AssertionError(f"{status} never said running")


@pytest.fixture(scope="module")
def server():
    with ForkServer() as running:
        yield running


def _in_thread(target):
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


@pytest.mark.integration
def test_a_killed_worker_is_a_failed_run_and_its_folder_says_so(tmp_path, server):
    """SIGKILL (the out-of-memory killer's signal) leaves no outcome: the run is failed
    with the signal, in the outcome and in its run folder (which said running)."""
    job = _job(tmp_path, **LONG)
    thread, result = _in_thread(lambda: process.run_worker(job, threading.Event(), server=server))
    status = tmp_path / "runs" / job.run_id / "status.json"
    pid = _running_pid(status)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    (outcome,) = result
    assert outcome.status == "failed" and outcome.run_id == job.run_id
    assert "killed by signal 9 (SIGKILL)" in outcome.error
    recorded = read_status(status)
    assert recorded["status"] == "failed" and "SIGKILL" in recorded["error"]


@pytest.mark.integration
def test_stop_interrupts_the_run_which_marks_its_folder(tmp_path, server):
    job = _job(tmp_path, **LONG)
    stop = threading.Event()
    thread, result = _in_thread(lambda: process.run_worker(job, stop, server=server))
    status = tmp_path / "runs" / job.run_id / "status.json"
    _running_pid(status)
    t0 = time.monotonic()
    stop.set()
    thread.join(60)
    (outcome,) = result
    assert outcome.status == "interrupted" and time.monotonic() - t0 < 30
    assert read_status(status)["status"] == "interrupted"


@pytest.mark.integration
def test_a_forked_run_completes_with_its_own_thread_count_and_environment(
    tmp_path, server, monkeypatch
):
    """The forkserver started before this environment and folder: the run gets the
    caller's, and the thread limit of its job."""
    monkeypatch.setenv("BENCHBOX_TEST_MARK", "seen")
    job = _job(tmp_path, seg="none", epochs=1)
    job.threads = 1
    outcome = process.run_worker(
        job, threading.Event(), server=server, env=dict(os.environ), cwd=str(tmp_path)
    )
    assert outcome.status == "completed", outcome.error
    record = json.loads((tmp_path / "runs" / job.run_id / "environment.json").read_text())
    assert record["torch_threads"] == 1


@pytest.mark.integration
def test_a_job_run_twice_is_refused(tmp_path, server):
    """A job's run id names its folder: a retried task cannot add a second row."""
    job = _job(tmp_path, seg="none", epochs=1)
    assert process.run_worker(job, threading.Event(), server=server).status == "completed"
    again = process.run_worker(job, threading.Event(), server=server)
    assert again.status == "failed" and "already exists" in again.error
    rows = (tmp_path / "leaderboards" / "synthetic.csv").read_text().splitlines()
    assert len(rows) == 2  # the header and one row


@pytest.mark.integration
def test_a_fresh_process_worker_killed_is_failed_with_the_signal(tmp_path, monkeypatch):
    monkeypatch.setattr(
        process,
        "worker_command",
        lambda: [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
    )
    job = Job(index=0, config_hash="x", config={})
    outcome = process.run_worker(job, threading.Event(), start="process")
    assert outcome.status == "failed"
    assert "killed by signal 9 (SIGKILL)" in outcome.error


@pytest.mark.integration
def test_a_fresh_process_worker_is_stopped_with_sigint(monkeypatch):
    script = (
        "import sys, time, json, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as the real worker does\n"
        "sys.stdin.read()\n"
        "try:\n"
        "    time.sleep(30)\n"
        "except KeyboardInterrupt:\n"
        "    print('benchbox-sweep-result: ' + json.dumps({'status': 'interrupted'}), flush=True)\n"
        "    sys.exit(130)\n"
    )
    monkeypatch.setattr(process, "worker_command", lambda: [sys.executable, "-c", script])
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    outcome = process.run_worker(Job(index=0, config_hash="x", config={}), stop, start="process")
    assert outcome.status == "interrupted"
    assert time.monotonic() - t0 < 10


@pytest.mark.integration
def test_a_run_whose_forkserver_dies_is_failed_and_ends_too(tmp_path):
    job = _job(tmp_path, **LONG)
    with ForkServer() as own:
        thread, result = _in_thread(lambda: process.run_worker(job, threading.Event(), server=own))
        status = tmp_path / "runs" / job.run_id / "status.json"
        pid = _running_pid(status)
        own.proc.kill()
        thread.join(60)
    (outcome,) = result
    assert outcome.status == "failed" and "the forkserver process ended" in outcome.error
    deadline = time.monotonic() + 30
    while read_status(status)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_status(status)["status"] == "interrupted"  # the run heard SIGTERM
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


@pytest.mark.integration
def test_a_fresh_process_runs_a_job_as_the_forkserver_does(tmp_path):
    job = _job(tmp_path, seg="none", epochs=1)
    outcome = process.run_worker(job, threading.Event(), start="process")
    assert outcome.status == "completed" and outcome.run_id == job.run_id, outcome.error
    assert read_status(tmp_path / "runs" / job.run_id / "status.json")["status"] == "completed"


@pytest.mark.integration
def test_the_forkserver_preload_leaves_cuda_alone():
    """A child can use a GPU only if the server never initialised CUDA before forking:
    the preload imports modules and asks nothing of CUDA."""
    script = (
        "import torch\n"
        "asked = []\n"
        "torch._C._cuda_getDeviceCount = lambda *a: asked.append(1) or 0\n"
        "torch.cuda.is_available = lambda *a: asked.append(1) or False\n"
        "import benchbox.sweep.preload\n"
        "assert not asked and not torch.cuda.is_initialized(), asked\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


@pytest.mark.integration
def test_a_dead_forkserver_is_a_failed_run_not_a_hang(tmp_path):
    job = _job(tmp_path, seg="none", epochs=1)
    with ForkServer() as dead:
        dead.proc.kill()
        dead.proc.wait()
        t0 = time.monotonic()
        outcome = process.run_worker(job, threading.Event(), server=dead)
    assert outcome.status == "failed" and "forkserver ended" in outcome.error, outcome.error
    assert time.monotonic() - t0 < 10
