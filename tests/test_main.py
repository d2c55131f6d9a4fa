"""The ``benchbox`` entry point (``benchbox/__main__.py``): a sweep's spare is forked
before the command line's imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from benchbox.__main__ import early_spare


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sweep", "--seg", "attunet", "--seed", "0,1"], True),
        (["sweep"], True),
        (["sweep", "--seed", "0,1", "--dry-run"], False),
        (["sweep", "--help"], False),
        (["sweep", "-h"], False),
        (["run", "--seg", "attunet"], False),
        (["--debug", "sweep"], False),  # an option first: the command line's own fork
        ([], False),
    ],
)
def test_an_early_spare_only_for_a_sweep_that_runs(args, expected):
    assert early_spare(args) is expected


#: In a fresh Python, as the console script starts: a sweep with a usage error.
_ENTRY = """
import atexit, json, sys
from benchbox.sweep import spare as spares

seen = {}
real = spares.fork_spare

def record():
    seen["cli_imported"] = "benchbox.cli" in sys.modules
    forked = real()
    seen["pid"] = spares._spare.pid if spares._spare is not None else None
    return forked

spares.fork_spare = record
atexit.register(lambda: print(json.dumps(seen), flush=True))
sys.argv = ["benchbox", "sweep", "--no-such-option"]
from benchbox.__main__ import console
console()
"""


@pytest.mark.integration
def test_a_sweep_forks_its_spare_before_the_cli_imports_and_a_usage_error_ends_it():
    done = subprocess.run(
        [sys.executable, "-c", _ENTRY], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr  # typer's usage error
    assert "--no-such-option" in done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["cli_imported"] is False and seen["pid"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(seen["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the spare outlived the command")
