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


#: Run in a fresh Python, as a sweep's driver starts: the spare forked before torch was
#: imported becomes a server that runs a job with the job's thread limits on every
#: native pool, although the parent loaded them at their default sizes; closing the
#: server ends it. A second spare, never taken, ends when discarded.
_SPARE = """
import json, sys, threading
from benchbox.sweep import process
from benchbox.sweep.forkserver import ForkServer
from benchbox.sweep.spare import fork_spare
from benchbox.sweep.job import Job

assert "torch" not in sys.modules
forked = fork_spare()
import torch
from benchbox.records.rundir import native_threads
parent = native_threads()
job = Job.from_json(sys.argv[1])
with ForkServer(threads=1, inherit=True) as server:
    outcome = process.run_worker(job, threading.Event(), server=server)
fork_spare()  # torch is imported now: no second spare
print(json.dumps({"forked": forked, "inherited": server.inherited, "status": outcome.status,
                  "error": outcome.error, "server_exit": server.proc.poll(), "parent": parent,
                  "again": fork_spare()}))
"""


@pytest.mark.integration
def test_a_spare_forked_from_the_driver_serves_jobs_with_their_own_thread_limits(tmp_path):
    job = _job(tmp_path, seg="none", epochs=1)
    job.threads = 1
    done = subprocess.run(
        [sys.executable, "-c", _SPARE, job.to_json()],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["forked"] is True and result["inherited"] is True
    assert result["again"] is False  # torch imported: forking now would not be safe
    assert result["status"] == "completed", result["error"]
    assert result["server_exit"] == 0  # its standard input closed: it ended on its own
    record = json.loads((tmp_path / "runs" / job.run_id / "environment.json").read_text())
    assert record["torch_threads"] == 1
    assert record["native_threads"] and set(record["native_threads"].values()) == {1}
    if (os.cpu_count() or 1) > 1:  # the limits were the job's, not what the fork inherited
        assert max(result["parent"].values()) > 1


#: A spare that is never taken ends when discarded, or with the process that forked it,
#: also while it imports: here its imports take 10 minutes.
_UNTAKEN = """
import os, sys, time
from benchbox.sweep import spare as spares

class Slow:  # in the spare only: its import of what a run uses takes 10 minutes
    def find_spec(self, name, path=None, target=None):
        if name == "benchbox.sweep.preload" and os.getpid() != DRIVER:
            time.sleep(600)
        return None

DRIVER = os.getpid()
sys.meta_path.insert(0, Slow())
assert spares.fork_spare()
spare = spares._spare
print(spare.pid, flush=True)
if sys.argv[1] == "discard":
    t0 = time.monotonic()
    spares.discard_spare()  # while it imports torch: not waited for
    print(time.monotonic() - t0, flush=True)
os._exit(0)  # no clean-up of any kind
"""


def _gone(pid: int, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.integration
@pytest.mark.parametrize("how", ["discard", "driver exits"])
def test_a_spare_not_taken_ends_when_discarded_or_with_its_driver(how):
    done = subprocess.run(
        [sys.executable, "-c", _UNTAKEN, how.split()[0]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.split()
    if how == "discard":
        assert float(lines[1]) < 2.0  # ended, not waited for until its imports are done
    pid = int(lines[0])
    if not _gone(pid, within_s=10):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the spare outlived its driver")


def test_no_spare_is_forked_from_a_process_that_imported_torch_or_runs_threads():
    """Its OpenMP pool may have started (a forked child would hang in its first parallel
    loop), or another thread may hold a lock: such a process gets a fresh server."""
    from benchbox.sweep import spare

    assert "torch" in sys.modules  # this test session's
    assert spare.fork_spare() is False and spare._spare is None
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        saved = sys.modules.pop("torch")
        try:
            assert spare.fork_spare() is False and spare._spare is None
        finally:
            sys.modules["torch"] = saved
    finally:
        release.set()
        other.join()
