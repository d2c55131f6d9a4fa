"""The pytest plugin (``pytest11`` entry point): ``pytest --benchbox-contracts DIST`` in a
plugin author's folder, run in a subprocess as the author runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchbox.hooks.registry import Entry, Provider
from benchbox.testing.pytest_plugin import contract_params

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "300", "PYTHONPATH": str(FIXTURES / "contracts")}
    environ.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfs", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env=environ,
        timeout=300,
    )


@pytest.mark.integration
def test_the_flag_adds_a_test_per_component_and_the_broken_one_fails(tmp_path):
    result = pytest_in(tmp_path, "--benchbox-contracts", "benchbox-contract-demo")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "1 failed, 7 passed" in out
    node = "benchbox-contracts[benchbox-contract-demo]::segmenter[cd-wrong-shape]"
    assert f"FAILED {node}" in out
    assert (
        "segmenter 'cd-wrong-shape': forward on (2, 1, 32, 64) (built with in_channels=1, "
        "num_classes=2) returned shape (2, 1, 32, 64); expected (2, 2, 32, 64)" in out
    )
    assert "Traceback" not in out

    selected = pytest_in(tmp_path, "--benchbox-contracts", "benchbox-contract-demo", "-k", "cd-c")
    assert selected.returncode == 0, selected.stdout
    assert "3 passed, 5 deselected" in selected.stdout


@pytest.mark.integration
def test_without_the_flag_it_adds_nothing_and_imports_no_torch(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    pass\n")
    result = pytest_in(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "benchbox-contracts" not in result.stdout
    assert "--benchbox-contracts=DIST" in pytest_in(tmp_path, "--help").stdout
    code = "import sys, benchbox.testing.pytest_plugin; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.integration
def test_an_unknown_distribution_is_a_usage_error(tmp_path):
    result = pytest_in(tmp_path, "--benchbox-contracts", "benchbox-contract-dem")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: --benchbox-contracts: no installed distribution 'benchbox-contract-dem' "
        "declares benchbox plugins; did you mean 'benchbox-contract-demo'?" in result.stderr
    )


def test_contract_params_are_named_by_kind_and_marked_slow():
    entries = [
        Entry("segmenter", "big", object, "", Provider("p"), {"slow": True}),
        Entry("loss", "l1", object, "", Provider("p"), {"task": "fusion"}),
    ]
    params = contract_params(entries)
    assert [p.id for p in params] == ["segmenter-big", "loss-l1"]
    assert [[m.name for m in p.marks] for p in params] == [["slow"], []]
