"""The sweep ledger: one line per run, resumable, readable after any stop."""

from __future__ import annotations

import pytest

from benchbox.errors import ConfigError
from benchbox.sweep.ledger import plan, read_ledger

RUNS = [("aaa", {"seed": 0}), ("bbb", {"seed": 1}), ("ccc", {"seed": 2})]


@pytest.mark.integration
def test_new_sweep_queues_every_run(tmp_path):
    ledger, todo = plan(tmp_path / "ledger.csv", RUNS)
    assert [e.config_hash for e in todo] == ["aaa", "bbb", "ccc"]
    assert ledger.counts()["queued"] == 3
    assert [e.status for e in read_ledger(tmp_path / "ledger.csv")] == ["queued"] * 3


def test_resume_skips_completed_reruns_interrupted_and_failed_only_when_asked(tmp_path):
    path = tmp_path / "ledger.csv"
    ledger, _ = plan(path, RUNS)
    entries = ledger.entries
    ledger.update(entries[0], status="completed", run_id="r0", wall_s=1.5)
    ledger.update(entries[1], status="failed", error="NaN, loss diverged")
    ledger.update(entries[2], status="interrupted")

    again, todo = plan(path, RUNS)
    assert [e.config_hash for e in todo] == ["ccc"]
    kept = again.entries[0]
    assert kept.status == "completed" and kept.run_id == "r0" and kept.wall_s == 1.5
    assert again.entries[1].error == "NaN, loss diverged"

    _, todo = plan(path, RUNS, retry_failed=True)
    assert [e.config_hash for e in todo] == ["bbb", "ccc"]


def test_a_grown_grid_keeps_what_is_done(tmp_path):
    path = tmp_path / "ledger.csv"
    ledger, _ = plan(path, RUNS[:1])
    ledger.update(ledger.entries[0], status="completed")
    _, todo = plan(path, RUNS)
    assert [e.config_hash for e in todo] == ["bbb", "ccc"]


def test_unknown_status_is_refused(tmp_path):
    ledger, _ = plan(tmp_path / "ledger.csv", RUNS)
    with pytest.raises(ValueError, match="unknown status"):
        ledger.update(ledger.entries[0], status="done")


def test_malformed_ledger_is_one_clear_error(tmp_path):
    path = tmp_path / "ledger.csv"
    plan(path, RUNS)
    path.write_text(path.read_text().replace("queued", "finished", 1))
    with pytest.raises(ConfigError, match=r"line 2: unknown status 'finished'"):
        read_ledger(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: "", "is empty"),
        (lambda text: text[:12], "its header is cut"),
        (lambda text: "a,b\n1,2\n", "not a ledger's"),
    ],
)
def test_a_damaged_ledger_is_never_taken_for_a_new_sweep(tmp_path, damage, message):
    path = tmp_path / "ledger.csv"
    ledger, _ = plan(path, RUNS)
    ledger.update(ledger.entries[0], status="completed", run_id="r0")
    path.write_text(damage(path.read_text()))
    with pytest.raises(ConfigError, match=message) as caught:
        plan(path, RUNS)
    assert str(path) in str(caught.value) and "remove it" in str(caught.value)


def test_rerun_runs_completed_and_failed_again(tmp_path):
    path = tmp_path / "ledger.csv"
    ledger, _ = plan(path, RUNS)
    ledger.update(ledger.entries[0], status="completed", run_id="r0")
    ledger.update(ledger.entries[1], status="failed", error="x")
    _, todo = plan(path, RUNS, rerun=True)
    assert [e.config_hash for e in todo] == ["aaa", "bbb", "ccc"]
