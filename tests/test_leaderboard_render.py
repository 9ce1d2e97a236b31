"""Leaderboards as people see them: terminal, Markdown, and the HTML page in headless Chromium."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from minbench.cli import main
from minbench.scoring import leaderboard as L
from minbench.scoring import render

from test_leaderboard import FP_B, result


@pytest.fixture
def boards(tmp_path, monkeypatch):
    d = tmp_path / "boards"
    monkeypatch.setenv(L.ENV_DIR, str(d))
    for name, v in [("resnet <script>alert(1)</script>", 0.62), ("vit | big", 0.71), ("linear", 0.40),
                    ("tie", 0.62)]:
        L.add_entry("fewshot-10", result(v), name=name, method="m", source="run")
    L.add_entry("fewshot-10", result(0.95, fp=FP_B, name="other"), name="elsewhere", method="", source="run")
    size = dataclasses.replace(result(0.5, task="size"), headline="mae",
                               metrics={"mae": 2.1, "rmse": 3.0, "mape": 12.0, "r2": 0.8, "coverage": 0.9},
                               ci={"mae": {"low": 1.8, "high": 2.4, "level": 0.95, "n_resamples": 1000, "seed": 0,
                                           "method": "percentile bootstrap"}})
    L.add_entry("size", size, name="cube-a", method="", source="run")
    L.add_entry("size", dataclasses.replace(size, metrics={**size.metrics, "mae": 1.5}), name="cube-b", method="",
                source="run")
    L.add_published("fewshot-10", name="paper net", metrics={"top1": 0.99}, citation="A. Author, 2024")
    L.add_published("fewshot-98", name="people", metrics={"top1": 0.5, "top2": 0.6}, citation="B. Author",
                    reference=True, dataset_name="elsewhere53")
    return d


def _sections(d, task=None):
    return render.group(L.load_boards([d]), task=task)


def test_grouping_keeps_datasets_apart_and_ranks_within_each(boards):
    (s,) = _sections(boards, task="fewshot-10")
    assert len(s.scored) == 2 and len(s.published) == 1 and len(s.reference) == 1
    main_board = next(b for _, b in s.scored if b["dataset"]["name"] == "synth")
    ranks = [(r, e["name"]) for r, e in render.ranked(main_board)]
    assert ranks == [(1, "vit | big"), (2, "resnet <script>alert(1)</script>"), (2, "tie"), (3 + 1, "linear")]
    (size,) = _sections(boards, task="size")
    assert [e["name"] for _, e in render.ranked(size.scored[0][1])] == ["cube-b", "cube-a"]  # lower MAE first
    # the reference board appears beside classification tasks only
    assert _sections(boards, task="fewshot-360")[0].reference and not size.reference


def test_markdown_table(boards, tmp_path):
    assert main(["leaderboard", "--format", "markdown", "--task", "fewshot-10", "--out", str(tmp_path / "lb.md"),
                 "--dir", str(boards)]) == 0
    md = (tmp_path / "lb.md").read_text()
    assert "### fewshot-10: Few-shot classification, 10 species" in md
    assert "| 1† | vit \\| big | m | run | **71.0%** [66.0, 76.0] |" in md  # †: no per-sample results, no group
    assert "&lt;script&gt;" in md and "<script>" not in md
    assert "Published: mineralimage5k" in md and "Source: A. Author, 2024" in md
    assert "Reference: elsewhere53" in md and "not ranked" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "people" in line]
    assert rows and rows[0].startswith("|  | people")  # reference rows carry no rank


def test_terminal_table(boards, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at the terminal's width
    assert main(["leaderboard", "--task", "size", "--dir", str(boards)]) == 0
    out = capsys.readouterr().out
    assert "cube-b" in out and "1.5 cm" in out and "lower is better" in out


def test_reference_rows_are_labelled_in_every_format(boards, tmp_path, capsys, monkeypatch):
    L.add_entry("fewshot-10", result(0.45), name="colour-logistic", method="colour only", source="run",
                role="reference")
    monkeypatch.setenv("COLUMNS", "100")  # narrow: the mark comes before the name, never cut away
    assert main(["leaderboard", "--task", "fewshot-10", "--dir", str(boards)]) == 0
    out = capsys.readouterr().out
    assert "(ref) colour-logistic" in out and "(ref) reference row" in out
    assert main(["leaderboard", "--format", "markdown", "--task", "fewshot-10", "--out", str(tmp_path / "lb.md"),
                 "--dir", str(boards)]) == 0
    md = (tmp_path / "lb.md").read_text()
    assert "| 4† | (ref) colour-logistic | colour only | run | **45.0%** [40.0, 50.0] |" in md
    assert md.count(render.REFERENCE_NOTE) == 1  # under the board that holds it only
    assert main(["leaderboard", "--format", "html", "--out", str(tmp_path / "lb.html"), "--dir", str(boards)]) == 0
    page = (tmp_path / "lb.html").read_text()
    assert '<tr data-name="colour-logistic" class="reference">' in page and '<span class="refmark">(ref)</span>' in page
    assert page.count('class="reference"') == 1


def test_unknown_task_is_refused(boards, capsys):
    assert main(["leaderboard", "--task", "nope", "--dir", str(boards)]) == 2
    assert "fewshot-10" in capsys.readouterr().err


class _Rows(HTMLParser):
    """Reads the page's tables: id -> list of (data-name, headline cell text)."""

    def __init__(self):
        super().__init__()
        self.tables, self._table, self._row, self._cell, self._in_head = {}, None, None, None, False
        self.svg_points = 0
        self.ready = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html" and a.get("data-sortable") == "ready":
            self.ready = True
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and "data-name" in a:
            self._row = [a["data-name"], ""]
        elif tag == "td" and self._row is not None and "head" in (a.get("class") or ""):
            self._in_head = True
        elif tag == "circle" and "point" in (a.get("class") or ""):
            self.svg_points += 1

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_head = False
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(tuple(self._row))
            self._row = None

    def handle_data(self, data):
        if self._in_head:
            self._row[1] += data


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def _run_chromium(args, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, timeout=120)


def test_html_page_is_self_contained_and_escaped(boards, tmp_path):
    assert main(["leaderboard", "--format", "html", "--out", str(tmp_path / "lb.html"), "--dir", str(boards)]) == 0
    page = (tmp_path / "lb.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched at view time
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert page.count("<table") == 4 + 1 + 1 + 1  # fewshot-10: 2 scored + published + reference; 98, 360: reference; size


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_html_page_in_headless_chromium(boards, tmp_path):
    from PIL import Image
    import numpy as np

    out = tmp_path / "lb.html"
    assert main(["leaderboard", "--format", "html", "--out", str(out), "--dir", str(boards)]) == 0
    table_id = next(t for t in re.findall(r'<table class="lb" id="([^"]+)"', out.read_text())
                    if "fewshot-10--synth" in t)
    # the rendered DOM, opened with a hash that asks the page's JS to sort by top1 ascending
    dom = _run_chromium(["--virtual-time-budget=3000", "--dump-dom", f"{out.as_uri()}#sort={table_id}:top1:asc"],
                        tmp_path / "profile1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Rows()
    parsed.feed(dom.stdout.decode())
    assert parsed.ready, "the page's script did not run"
    rows = parsed.tables[table_id]
    assert [name for name, _ in rows] == ["linear", "resnet <script>alert(1)</script>", "tie", "vit | big"]
    assert rows[0][1].startswith("40.0%") and "[35.0, 45.0]" in rows[0][1]
    assert parsed.svg_points >= 4 + 1 + 1 + 2 + 3  # a chart dot per entry with a headline value
    # and as a picture: a screenshot that is not blank
    shot = tmp_path / "shot.png"
    res = _run_chromium(["--window-size=1200,1400", "--hide-scrollbars", f"--screenshot={shot}", out.as_uri()],
                        tmp_path / "profile2")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (1400, 1200)
    dark = (img < 128).mean()
    assert 0.005 < dark < 0.5, dark   # text and charts drawn, not a blank or black page
    assert img[:, 600:].std() > 10    # something drawn right of the middle too (tables, charts)
