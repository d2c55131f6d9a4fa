"""``benchbox plugins --check DIST`` as a plugin author runs it: in a subprocess, on real
distributions with their own ``.dist-info`` (tests/fixtures/plugins)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"
WRONG_SHAPE = (
    "fail segmenter 'cd-wrong-shape': forward on (2, 1, 32, 64) (built with in_channels=1, "
    "num_classes=2) returned shape (2, 1, 32, 64); expected (2, 2, 32, 64)"
)


def check(*args: str, extra_path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "300"}
    environ["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), environ.get("PYTHONPATH", "")])
    code = "import sys; from benchbox.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "plugins", "--check", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


@pytest.mark.integration
def test_a_broken_component_fails_by_name_and_the_good_ones_pass():
    result = check("benchbox-contract-demo", extra_path=(FIXTURES / "contracts",))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("fail")] == [WRONG_SHAPE]
    passed = {line.split("'")[1] for line in lines if line.startswith("pass")}
    assert passed == {
        "cd-conv-fusion",
        "cd-conv",
        "cd-ce",
        "cd-tiny",
        "cd-mae",
        "cd-brightness",
        "cd-regions",
    }
    assert lines[-1].startswith("benchbox-contract-demo: 8 checked, 7 passed, 1 failed in ")
    assert result.stderr == ""


@pytest.mark.integration
def test_a_good_distribution_passes_and_kind_and_pattern_select():
    result = check("Benchbox_Demo.Plugin", extra_path=(FIXTURES / "good",))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(" (")[0] for line in result.stdout.splitlines()[:-1]] == [
        "pass fusion 'demo-average'",
        "pass loss 'demo-l1'",
    ]
    assert result.stdout.splitlines()[-1].startswith("benchbox-demo-plugin: 2 checked, 2 passed")
    result = check("benchbox", "--kind", "region")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("pass region 'brats' (")


@pytest.mark.integration
def test_a_plugin_that_fails_to_load_is_a_failure():
    result = check("benchbox-broken-plugin", extra_path=(FIXTURES / "broken",))
    assert result.returncode == 1
    [line, _] = result.stdout.splitlines()
    assert line.startswith(
        "fail plugin benchbox-broken-plugin 0.0.1 (benchbox-broken-plugin:broken) failed to "
        "load: ModuleNotFoundError: No module named 'benchbox_dependency_that_is_not_installed'"
    )


@pytest.mark.integration
def test_an_unknown_distribution_is_one_line_listing_the_installed_ones():
    result = check("benchbox-contract-dem", extra_path=(FIXTURES / "contracts",))
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "error: no installed distribution 'benchbox-contract-dem' declares benchbox plugins; "
        "did you mean 'benchbox-contract-demo'? (installed: "
    )
    assert "benchbox, benchbox-contract-demo" in line
