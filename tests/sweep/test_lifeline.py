"""A worker ends when the process that started it ends (kill -9, the OOM killer)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from benchbox.records.status import process_identity
from benchbox.sweep.lifeline import owner_alive

#: A worker: ends with its owner, says how (SIGTERM is how a run hears it).
CHILD = """
import signal, sys, time
from benchbox.sweep.lifeline import die_with
pid, identity = int(sys.argv[1]), sys.argv[2] or None
def on_term(signum, frame):
    print("terminated", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
die_with(pid, identity, interval=0.2)
print("started", flush=True)
time.sleep(60)
"""

#: An owner that starts the worker itself: the worker's parent.
PARENT = f"""
import os, subprocess, sys, time
from benchbox.records.status import process_identity
child = subprocess.Popen(
    [sys.executable, "-c", {CHILD!r}, str(os.getpid()), process_identity(os.getpid()) or ""],
    stdout=subprocess.PIPE, text=True, start_new_session=True,
)
print(child.pid, flush=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not owner_alive(pid, None):
            return True
        try:  # a zombie of ours counts as gone
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


@pytest.mark.integration
def test_a_worker_ends_with_its_parent_owner():
    owner = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(owner.stdout.readline())
        assert owner.stdout.readline().strip() == "started"
        owner.kill()
        owner.wait()
        assert _gone(child, 10), "the worker outlived its owner"
    finally:
        owner.kill()
        if owner_alive(child, None):
            os.kill(child, signal.SIGKILL)


@pytest.mark.integration
def test_a_worker_ends_with_an_owner_that_is_not_its_parent():
    """A worker forked by a forkserver is not its owner's child: the watch notices."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = None
    deadline = time.monotonic() + 10
    while identity is None and time.monotonic() < deadline:
        identity = process_identity(owner.pid)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(owner.pid), identity or ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "started"
        owner.kill()
        owner.wait()
        child.wait(10)
        assert child.stdout.read().strip() == "terminated"  # as a run hears Ctrl-C
    finally:
        owner.kill()
        child.kill()


@pytest.mark.integration
def test_an_owner_already_gone_ends_the_worker_at_once():
    owner = subprocess.Popen([sys.executable, "-c", "pass"])
    owner.wait()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(owner.pid), "not-its-identity"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert child.returncode == 143 and "started" not in child.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process identity is Linux's")
def test_a_reused_pid_is_not_the_owner():
    assert owner_alive(os.getpid(), process_identity(os.getpid()))
    assert not owner_alive(os.getpid(), "another-boot:1")
