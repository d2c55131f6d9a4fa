"""`benchbox plugins`, `--version`, `--help` as a user runs them: in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"


def benchbox(*args: str, extra_path: list[Path] = (), env: dict[str, str] | None = None):
    environ = {**os.environ, "COLUMNS": "200", **(env or {})}
    if extra_path:
        environ["PYTHONPATH"] = os.pathsep.join(
            [*map(str, extra_path), environ.get("PYTHONPATH", "")]
        )
    code = "import sys; from benchbox.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


@pytest.mark.integration
def test_help_does_not_import_torch():
    code = (
        "import sys; from benchbox.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'benchbox --help imported torch'\n"
        "assert 'pandas' not in sys.modules and 'SimpleITK' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for command in ("run", "plugins", "evaluate", "leaderboard", "synthetic"):
        assert command in result.stdout


@pytest.mark.integration
def test_version():
    from benchbox import __version__

    result = benchbox("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"benchbox {__version__}"


@pytest.mark.integration
def test_lists_builtins_and_third_party_with_provider():
    result = benchbox("plugins", extra_path=[FIXTURES / "good"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row = next(line for line in lines if "demo-average" in line)
    assert "fusion" in row and "benchbox-demo-plugin" in row and "0.3.1" in row
    assert any("attunet" in line and "benchbox" in line for line in lines)
    assert result.stderr == ""


@pytest.mark.integration
def test_kind_and_pattern_filter():
    result = benchbox("plugins", "--kind", "loss", "f*")
    assert result.returncode == 0
    names = {
        line.split("│")[2].strip() for line in result.stdout.splitlines() if line.startswith("│")
    }
    assert names == {"focal", "fusion"}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plugins", "--kind", "fusions"], "unknown plugin kind 'fusions'; did you mean 'fusion'?"),
        (["plugins", "--kind", "fusion", "zzz*"], "no fusion matches 'zzz*'"),
        (["run", "--fusion", "duall"], "unknown fusion 'duall'; did you mean 'dual'"),
        (["run", "--seg", "atunet"], "unknown segmenter 'atunet'; did you mean 'attunet'"),
        (["run", "--loss", "dicee"], "unknown loss 'dicee'; did you mean 'dice'"),
        (["run", "--dataset", "synthetc"], "unknown dataset 'synthetc'; did you mean 'synthetic'"),
    ],
)
def test_user_errors_are_one_line_and_non_zero(args, message):
    result = benchbox(*args)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_broken_plugin_is_reported_and_strict_fails():
    result = benchbox("plugins", extra_path=[FIXTURES / "broken"])
    assert result.returncode == 0
    assert "dual" in result.stdout
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("failed to load benchbox-broken-plugin 0.0.1")
    assert "ModuleNotFoundError" in line

    strict = benchbox("plugins", "--strict", extra_path=[FIXTURES / "broken"])
    assert strict.returncode == 1
    assert strict.stderr.strip().startswith("error: plugin benchbox-broken-plugin 0.0.1")
    assert len(strict.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_duplicate_is_listed_marked_and_fails_only_the_run_that_uses_it():
    dup = [FIXTURES / "dup"]
    listing = benchbox("plugins", "--kind", "fusion", extra_path=dup)
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "dual (duplicate)" in line]
    assert len(rows) == 2
    assert sorted(row.split("│")[3].strip() for row in rows) == ["benchbox", "benchbox-dup-plugin"]
    [conflict] = listing.stderr.strip().splitlines()
    assert conflict.startswith("conflict: fusion 'dual' is registered twice")
    assert "benchbox-dup-plugin 1.0" in conflict and "benchbox 0.1.0" in conflict

    strict = benchbox("plugins", "--strict", extra_path=dup)
    assert strict.returncode == 1 and "registered twice" in strict.stderr

    run = benchbox("run", "--fusion", "dual", "--out", "/nonexistent/never", extra_path=dup)
    assert run.returncode == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("error: fusion 'dual' is registered twice: by ")
    assert "benchbox 0.1.0 (benchbox:fusion)" in line
    assert "benchbox-dup-plugin 1.0 (benchbox-dup-plugin:dup)" in line


@pytest.mark.integration
def test_disable_option_and_environment_variable():
    dup = [FIXTURES / "dup"]
    by_option = benchbox(
        "--disable", "benchbox-dup-plugin", "plugins", "-k", "fusion", extra_path=dup
    )
    by_env = benchbox(
        "plugins", "-k", "fusion", extra_path=dup, env={"BENCHBOX_DISABLE": "benchbox-dup-plugin"}
    )
    for result in (by_option, by_env):
        assert result.returncode == 0, result.stderr
        assert "duplicate" not in result.stdout and "benchbox-dup-plugin" not in result.stdout
        assert result.stderr.strip() == "disabled benchbox-dup-plugin 1.0 (benchbox-dup-plugin:dup)"
    typo = benchbox("--disable", "benchbox-dup-plugn", "plugins", "-k", "fusion", extra_path=dup)
    assert typo.returncode == 0
    assert "warning: BENCHBOX_DISABLE names 'benchbox-dup-plugn', which is no installed" in (
        typo.stderr
    )
    assert "did you mean 'benchbox-dup-plugin'?" in typo.stderr


@pytest.mark.integration
def test_misspelled_benchbox_plugins_is_one_warning_line():
    result = benchbox(
        "plugins",
        "-k",
        "fusion",
        extra_path=[FIXTURES / "good"],
        env={"BENCHBOX_PLUGINS": "benchbox,benchbox-demo-plugn"},
    )
    assert result.returncode == 0
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "warning: BENCHBOX_PLUGINS names 'benchbox-demo-plugn', which is no installed benchbox "
        "plugin; did you mean 'benchbox-demo-plugin'? installed: benchbox, benchbox-demo-plugin"
    )


@pytest.mark.integration
def test_debug_shows_the_load_error_traceback_and_the_hook_trace():
    result = benchbox("--debug", "plugins", "-k", "fusion", extra_path=[FIXTURES / "broken"])
    assert result.returncode == 0
    err = result.stderr
    assert "Traceback (most recent call last)" in err
    assert "benchbox_dependency_that_is_not_installed" in err
    assert "register_fusions [hook]" in err and "finish register_fusions" in err
    assert "called in order: benchbox:fusion, benchbox:baselines" in err
    assert err.strip().splitlines()[-1].startswith("failed to load benchbox-broken-plugin")
