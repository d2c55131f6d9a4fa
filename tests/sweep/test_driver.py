"""The sweep driver: planning, the ledger during and after a sweep, crashes, Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from benchbox.errors import ConfigError
from benchbox.sweep import executor as ex
from benchbox.sweep.driver import plan_runs, run_sweep, sweep_name
from benchbox.sweep.grid import Grid
from benchbox.sweep.ledger import read_ledger
from benchbox.testing import tiny_run_settings

TINY = tiny_run_settings(
    fusion_opts={"dual": {"width": 4, "depth": 2}},
    seg_opts={"attunet": {"width": 4, "depth": 2}},
)


@pytest.mark.integration
def test_plan_resolves_each_combination_like_benchbox_run(tmp_path):
    grid = Grid(base={"epochs": 2}, axes={"fusion": ["mean", "dual"], "seed": [0, 1]})
    runs = plan_runs(grid, overrides={**TINY, "out": str(tmp_path)})
    assert [(r.config.fusion, r.config.seed, r.config.epochs) for r in runs] == [
        ("mean", 0, 2),
        ("mean", 1, 2),
        ("dual", 0, 2),
        ("dual", 1, 2),
    ]
    assert len({r.config_hash for r in runs}) == 4
    assert sweep_name(runs) == sweep_name(plan_runs(grid, overrides={**TINY, "out": "x"}))


def test_a_bad_value_stops_the_sweep_before_any_run_naming_the_run():
    grid = Grid(axes={"seed": [0, 1], "image_size": [32, 33]})
    with pytest.raises(ConfigError, match=r"run seed=0 image_size=33: image_size must be"):
        plan_runs(grid)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"loss_opts": {"alpah": 0.5}}, r"loss 'hybrid' has no parameter 'alpah'"),
        ({"fusion_loss_opts": {"wieght": 1}}, r"loss 'fusion' has no parameter 'wieght'"),
        ({"trackers": ["mlfow"]}, r"mlfow"),
        ({"augment": ["flp"]}, r"flp"),
        ({"augment": ["affine"], "augment_opts": {"affine": {"degres": 5}}}, r"degres"),
        ({"select": "dcie"}, r"--select 'dcie'"),
        ({"data_opts": {"n_trian": 4}}, r"n_trian"),
    ],
)
def test_a_typo_in_any_setting_stops_the_sweep_at_planning(setting, message):
    """The sweep plans with the pre-flight check of benchbox run: a typo that only the
    run would have caught (loss options, trackers, transforms, --select, dataset options)
    stops the sweep before its first run, naming the combination."""
    grid = Grid(base=setting, axes={"seed": [0, 1]})
    with pytest.raises(Exception, match=message) as caught:
        plan_runs(grid)
    assert str(caught.value).startswith("run seed=0: ")


def test_the_planned_hash_is_the_hash_the_run_records(tmp_path):
    """Under the default --amp auto the run records the hash of the precision it used
    (float32 on this CPU); the sweep's ledger keys its runs by that same hash."""
    from benchbox.engine.runner import run
    from benchbox.records import leaderboard

    (planned,) = plan_runs(Grid(axes={"seed": [0]}), overrides={**TINY, "out": str(tmp_path)})
    assert planned.config.amp == "auto"
    result = run(planned.config)
    row = leaderboard.read(result.leaderboard).iloc[0]
    assert row["config_hash"] == planned.config_hash


def test_an_axis_without_effect_is_refused():
    grid = Grid(axes={"out": ["a", "b"]})  # the output folder is not part of the experiment
    with pytest.raises(ConfigError, match="make the same run"):
        plan_runs(grid)


class FakeExecutor:
    """Ends each job at once with a scripted outcome, or blocks until stopped."""

    def __init__(self, outcomes):
        self.outcomes = outcomes
        self.slots = 2
        self.seen = []
        self.jobs = []
        self.release = threading.Event()  # ends a blocked job as the driver's stop does

    def run(self, jobs, events, stop):
        for job in jobs:
            self.seen.append(job.index)
            self.jobs.append(job)
            events.started(job)
            if getattr(self, "on_started", None):
                self.on_started(job)
            outcome = self.outcomes[job.index]
            if outcome == "block":
                while not (stop.is_set() or self.release.is_set()):
                    time.sleep(0.01)
                events.ended(job, ex.Outcome("interrupted", error="stopped"))
                return
            events.ended(job, outcome)


def test_ledger_records_outcomes_and_resume_skips_completed(tmp_path):
    runs = plan_runs(Grid(axes={"seed": [0, 1, 2]}), overrides={"out": str(tmp_path)})
    fake = FakeExecutor(
        {
            0: ex.Outcome("completed", run_id="r0", wall_s=3.0),
            1: ex.Outcome("failed", run_id="r1", error="loss is NaN", wall_s=1.0),
            2: ex.Outcome("completed", run_id="r2", wall_s=2.0),
        }
    )
    result = run_sweep(runs, fake, tmp_path)
    rows = read_ledger(result.folder / "ledger.csv")
    assert [(r.status, r.run_id, r.error) for r in rows] == [
        ("completed", "r0", ""),
        ("failed", "r1", "loss is NaN"),
        ("completed", "r2", ""),
    ]
    assert rows[0].wall_s == 3.0 and rows[0].started and rows[0].finished

    again = FakeExecutor({1: ex.Outcome("completed", run_id="r1b", wall_s=1.0)})
    result = run_sweep(runs, again, tmp_path)
    assert again.seen == [] and result.skipped == 3  # failed runs wait for --retry-failed
    run_sweep(runs, again, tmp_path, retry_failed=True)
    assert again.seen == [1]
    assert read_ledger(result.folder / "ledger.csv")[1].run_id == "r1b"


def test_ctrl_c_marks_running_interrupted_and_the_rest_queued(tmp_path, monkeypatch):
    runs = plan_runs(Grid(axes={"seed": [0, 1, 2]}), overrides={"out": str(tmp_path)})
    fake = FakeExecutor({0: ex.Outcome("completed", run_id="r0"), 1: "block"})

    def interrupt_soon():
        time.sleep(0.3)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    result = run_sweep(runs, fake, tmp_path)
    assert result.interrupted
    statuses = [r.status for r in read_ledger(result.folder / "ledger.csv")]
    assert statuses == ["completed", "interrupted", "queued"]


def test_a_bad_dataset_option_value_stops_the_sweep_at_planning_by_its_name():
    grid = Grid(axes={"data_opts.n_train": [-5]})
    with pytest.raises(ConfigError, match=r"run data_opts.n_train=-5: dataset option n_train=-5"):
        plan_runs(grid)


@pytest.mark.parametrize("name", ["../../../x", "a/b", "..", ".hidden"])
def test_a_sweep_name_is_one_folder_under_out_sweeps(tmp_path, name):
    from benchbox.sweep.driver import check_sweep_name

    with pytest.raises(ConfigError, match="a sweep name is one folder name"):
        check_sweep_name(name)
    runs = plan_runs(Grid(axes={"seed": [0]}), overrides={"out": str(tmp_path / "o")})
    with pytest.raises(ConfigError, match="a sweep name is one folder name"):
        run_sweep(runs, FakeExecutor({}), tmp_path / "o", name=name)
    assert not (tmp_path / "x").exists() and not (tmp_path / "o").exists()


def _board(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["run_id,dataset,config_hash"] + [f"{r},synthetic,{h}" for r, h in rows]
    path.write_text("\n".join(lines) + "\n")


def test_a_run_already_on_the_leaderboard_is_not_run_again_unless_asked(tmp_path):
    """Whoever completed a config (another sweep, benchbox run, this sweep before its
    ledger was lost), its row is not appended again without --rerun."""
    runs = plan_runs(Grid(axes={"seed": [0, 1]}), overrides={"out": str(tmp_path)})
    _board(tmp_path / "leaderboards" / "synthetic.csv", [("old-run", runs[1].config_hash)])
    (tmp_path / "leaderboards" / "synthetic.cases.csv").write_text("run_id,case_id\nx,y\n")
    fake = FakeExecutor({0: ex.Outcome("completed", run_id="r0")})
    result = run_sweep(runs, fake, tmp_path)
    assert fake.seen == [0] and result.on_leaderboard == 1 and result.skipped == 1
    entries = read_ledger(result.folder / "ledger.csv")
    assert [(e.status, e.run_id) for e in entries] == [
        ("completed", "r0"),
        ("completed", "old-run"),
    ]

    # the ledger lost: nothing is run again
    (result.folder / "ledger.csv").unlink()
    _board(
        tmp_path / "leaderboards" / "synthetic.csv",
        [("r0", runs[0].config_hash), ("old-run", runs[1].config_hash)],
    )
    again = FakeExecutor({})
    assert run_sweep(runs, again, tmp_path).on_leaderboard == 2 and again.seen == []

    forced = FakeExecutor({i: ex.Outcome("completed", run_id=f"n{i}") for i in (0, 1)})
    result = run_sweep(runs, forced, tmp_path, rerun=True)
    assert forced.seen == [0, 1] and result.on_leaderboard == 0


def test_another_leaderboard_folder_does_not_count(tmp_path):
    runs = plan_runs(
        Grid(axes={"seed": [0]}),
        overrides={"out": str(tmp_path), "leaderboard_dir": str(tmp_path / "mine")},
    )
    _board(tmp_path / "leaderboards" / "synthetic.csv", [("elsewhere", runs[0].config_hash)])
    fake = FakeExecutor({0: ex.Outcome("completed", run_id="r0")})
    assert run_sweep(runs, fake, tmp_path).on_leaderboard == 0 and fake.seen == [0]


def test_one_driver_owns_a_sweep_and_a_second_one_is_refused_untouched(tmp_path):
    """Two identical sweeps at once on one --out: the second refuses in one line and
    writes nothing (neither the ledger nor grid.json of the first)."""
    runs = plan_runs(Grid(axes={"seed": [0, 1]}), overrides={"out": str(tmp_path)})
    first = FakeExecutor({0: "block"})
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(run_sweep(runs, first, tmp_path)))
    thread.start()
    try:
        folder = tmp_path / "sweeps" / sweep_name(runs)
        deadline = time.monotonic() + 10
        # The first sweep's ledger is still until its job is released once the job is
        # marked running (the executor sees a job before the driver records it).
        while time.monotonic() < deadline and not (
            (folder / "ledger.csv").exists()
            and read_ledger(folder / "ledger.csv")[0].status == "running"
        ):
            time.sleep(0.01)
        ledger = (folder / "ledger.csv").read_text()
        grid = (folder / "grid.json").stat().st_mtime_ns
        second = FakeExecutor({})
        with pytest.raises(ConfigError, match=r"already being run by another benchbox sweep \(pid"):
            run_sweep(runs, second, tmp_path)
        assert second.seen == []
        assert (folder / "ledger.csv").read_text() == ledger
        assert (folder / "grid.json").stat().st_mtime_ns == grid
    finally:
        first.release.set()
        thread.join(10)
    assert done  # the first sweep ended normally; the lock is free again
    run_sweep(
        runs, FakeExecutor({0: ex.Outcome("completed"), 1: ex.Outcome("completed")}), tmp_path
    )


def test_jobs_carry_absolute_paths_and_a_run_id_named_in_the_ledger(tmp_path, monkeypatch):
    """A Ray cluster runs a job in its own working folder: a relative --out would put the
    run folder, row and log there. The driver sends absolute paths, and names the run
    (its folder) in the ledger from the start."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    runs = plan_runs(
        Grid(axes={"seed": [0]}),
        overrides={"out": "rel", "leaderboard_dir": "boards", "dataset": "pairs:data"},
    )
    fake = FakeExecutor({0: "block"})
    seen = {}

    def started(job):
        seen.update(job=job, ledger=read_ledger(tmp_path / "rel" / "sweeps" / name / "ledger.csv"))
        fake.release.set()

    name = sweep_name(runs)
    fake.on_started = started
    result = run_sweep(runs, fake, "rel")
    job = seen["job"]
    assert job.config["out"] == str(tmp_path / "rel")
    assert job.config["leaderboard_dir"] == str(tmp_path / "boards")
    assert job.config["dataset"] == f"pairs:{tmp_path / 'data'}"
    assert job.log_path.startswith(str(tmp_path / "rel" / "sweeps"))
    assert job.run_id and seen["ledger"][0].run_id == job.run_id  # named while running
    assert result.folder == tmp_path / "rel" / "sweeps" / name
    assert (
        runs[0].config_hash
        == plan_runs(
            Grid(axes={"seed": [0]}),
            overrides={"out": str(tmp_path / "x"), "dataset": f"pairs:{tmp_path / 'data'}"},
        )[0].config_hash
    )  # the paths change no hash


#: In a fresh Python: an executor that waits (at most 20 s) for the driver to import
#: pandas, which the summary after the runs reads the leaderboards with.
_WARM = """
import json, sys, time
from benchbox.sweep import executor as ex
from benchbox.sweep.driver import plan_runs, run_sweep
from benchbox.sweep.grid import Grid

class Waits:
    slots = 1

    def run(self, jobs, events, stop):
        deadline = time.monotonic() + 20
        while "pandas" not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.01)
        self.seen = "pandas" in sys.modules
        for job in jobs:
            events.started(job)
            events.ended(job, ex.Outcome("completed", run_id="r"))

runs = plan_runs(Grid(axes={"seed": [0]}), overrides={"out": sys.argv[1]})
before = "pandas" in sys.modules
executor = Waits()
run_sweep(runs, executor, sys.argv[1])
print(json.dumps({"before": before, "during": executor.seen}))
"""


@pytest.mark.integration
def test_the_driver_imports_the_summarys_libraries_while_the_runs_run(tmp_path):
    """The driver is idle while its runs run; at the end the user would wait for them."""
    done = subprocess.run(
        [sys.executable, "-c", _WARM, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"before": False, "during": True}
