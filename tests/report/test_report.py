"""`benchbox report`: a self-contained HTML page (checked in headless Chromium) and a
Markdown page with its PNGs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from benchbox.errors import DataError
from benchbox.records import leaderboard

pytest.importorskip("matplotlib", reason="benchbox report needs matplotlib")

CASES = [f"case-{i:02d}" for i in range(10)]


@pytest.fixture
def board(tmp_path):
    """A leaderboard of three methods x 2 seeds in out/leaderboards, with one run folder
    holding an examples.png (as benchbox run leaves it)."""
    from PIL import Image

    path = tmp_path / "out" / "leaderboards" / "synthetic.csv"
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.8, len(CASES))
    for fusion, delta, speed in (("dual", 0.08, 40.0), ("mean", 0.0, 150.0), ("max", 0.01, 140.0)):
        for seed in range(2):
            run_id = f"{fusion}-s{seed}"
            dice = np.clip(base + delta + rng.normal(0, 0.01, len(CASES)), 0, 1)
            row = {
                "run_id": run_id,
                "dataset": "synthetic",
                "fusion": fusion,
                "segmenter": "attunet",
                "seed": seed,
                "epochs": 6,
                "dice_lesion": float(dice.mean()),
                "infer_img_s": speed,
                "seg_params": 2e6,
                "config_hash": f"hash-{run_id}",
                "device": "cpu",
            }
            cases = [
                {"case_id": c, "dice_lesion": d, "hd95_lesion": 10 * (1 - d), "ssim_mean": 0.6}
                for c, d in zip(CASES, dice, strict=True)
            ]
            leaderboard.append_row(path, row, cases=cases)
    run = tmp_path / "out" / "runs" / "dual-s0"
    run.mkdir(parents=True)
    Image.new("L", (40, 20), 128).save(run / "examples.png")
    return path


@pytest.mark.integration
def test_html_report_is_one_self_contained_file(board, tmp_path):
    from benchbox.cli import main

    out = tmp_path / "report.html"
    assert main(["report", str(board), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    # Nothing is fetched: no script, stylesheet link, remote source or CSS url() other
    # than the SVGs' references to their own clip paths (url(#id)).
    assert not re.search(r"<script|<link|@import|url\((?!#)|src=\"(?!data:)", page)
    assert not re.search(r"(src|href)=\"https?:", page)
    assert page.count("<svg") >= 7  # per metric: cases, ranks, significance; + cost
    assert "data:image/png;base64," in page  # the examples of dual
    for text in ("dual / attunet", "dice_lesion ↑", "hd95_lesion ↓", "Paired differences"):
        assert text in page
    # The leaderboard table gives mean [95% CI] and seeds, best method first.
    first_row = re.search(r"<tbody><tr class=\"best\">(.*?)</tr>", page).group(1)
    assert "dual / attunet" in first_row and "[" in first_row
    assert "benchbox run --dataset synthetic --fusion dual --seg attunet" in page
    # The command that made it (not the test runner's argv), and a shareable file mode.
    assert f"benchbox report {board} -o {out}" in page
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.integration
def test_markdown_report_links_pngs_written_beside_it(board, tmp_path):
    from benchbox.cli import main

    out = tmp_path / "report.md"
    assert main(["report", str(board), "-o", str(out), "-m", "dice_lesion"]) == 0
    text = out.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 5  # cases, ranks, significance, cost, examples
    for link in links:
        png = (tmp_path / link).read_bytes()
        assert png.startswith(b"\x89PNG")
    assert "| method | seeds | dice_lesion ↑ |" in text


def test_a_glob_that_also_matches_the_per_case_files_gives_one_section_each(board, tmp_path):
    from benchbox.report.build import build_report

    companion = leaderboard.cases_path(board)
    report = build_report([companion, board], metrics=["dice_lesion"], resamples=50)
    assert [s.path for s in report.sections] == [str(board)]
    with pytest.raises(DataError, match="only per-case"):
        build_report([companion])


@pytest.mark.integration
def test_report_of_a_leaderboard_without_per_case_results_says_so(tmp_path, capsys):
    from benchbox.cli import main

    for seed, dice in enumerate([0.5, 0.7]):
        row = {"run_id": f"r{seed}", "dataset": "old", "fusion": "dual", "seed": seed}
        path = leaderboard.append_row(tmp_path / "old.csv", {**row, "dice_lesion": dice})
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 0
    assert "old.cases.csv" in capsys.readouterr().err
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    # What the leaderboard alone gives: mean ± sd over seeds, said to be that.
    assert "old.cases.csv" in page and "mean ± sd over seeds" in page
    assert "0.6000 ± 0.14" in page
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "r.html")])
    assert info.value.code == 1
    with pytest.raises(SystemExit):
        main(["report", str(path), "-o", str(tmp_path / "no" / "such" / "r.html")])


@pytest.mark.integration
def test_a_report_with_nothing_to_show_is_refused_and_writes_no_page(board, tmp_path, capsys):
    # Before: a header-only leaderboard gave an empty page and exit 0.
    from benchbox.cli import main

    empty = tmp_path / "empty" / "synthetic.csv"
    empty.parent.mkdir()
    empty.write_text(board.read_text().splitlines()[0] + "\n")
    page = tmp_path / "r.html"
    with pytest.raises(SystemExit) as info:
        main(["report", str(empty), "-o", str(page)])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        f"error: nothing to report, no page written: {empty}: the leaderboard has no rows"
    )
    assert not page.exists()
    # Beside a leaderboard with rows, the empty one is a note of the page.
    assert main(["report", str(board), str(empty), "-o", str(page), "--resamples", "50"]) == 0
    assert f"{empty}: the leaderboard has no rows" in capsys.readouterr().err
    assert page.is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-extensions",
]


def _page_requests(page, tmp_path, name):
    """Load ``page`` in headless Chromium; its DOM and the URLs the page itself requested
    (from Chromium's net log: requests made on behalf of a file:// page)."""
    netlog = tmp_path / f"{name}.netlog.json"
    dom = subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--log-net-log={netlog}", "--dump-dom", page.as_uri()],
        capture_output=True,
        # Chromium writes UTF-8 whatever locale an earlier test left this process in.
        encoding="utf-8",
        errors="replace",
        timeout=180,
        check=True,
    ).stdout
    events = json.loads(netlog.read_text(encoding="utf-8"))
    start = events["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = {
        e["params"]["url"]
        for e in events["events"]
        if e["type"] == start
        and "url" in e.get("params", {})
        and e["params"].get("network_isolation_key", "").startswith("file://")
    }
    return dom, {u for u in urls if not u.startswith(("file:", "data:"))}


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_report_renders_offline_in_headless_chromium(board, tmp_path):
    from PIL import Image

    from benchbox.cli import main

    out = tmp_path / "report.html"
    assert main(["report", str(board), "-o", str(out)]) == 0
    # The detector sees a request when there is one.
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="https://example.invalid/x.png"></body></html>')
    _, requested = _page_requests(control, tmp_path, "control")
    assert requested == {"https://example.invalid/x.png"}

    dom, requested = _page_requests(out, tmp_path, "report")
    assert requested == set()
    assert "<table>" in dom and "dual / attunet" in dom and dom.count("<svg") >= 7

    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, "--window-size=1280,2400", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        timeout=180,
        check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20  # drawn: text, tables and figures, not a blank page
