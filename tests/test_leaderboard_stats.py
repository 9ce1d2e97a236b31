"""Seeds, identity, per-sample files, paired comparisons, rank groups, floors (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

from minbench.cards import get_card
from minbench.cli import main
from minbench.errors import UserError
from minbench.recipes import config_changes
from minbench.scoring import compare as C
from minbench.scoring import fixtures as F
from minbench.scoring import leaderboard as L
from minbench.scoring import metrics as M
from minbench.scoring import render
from minbench.scoring import samples as S
from minbench.scoring import stats
from minbench.scoring import tables as T
from minbench.scoring.score import ScoreResult, load_task_data, score_submission

FP = "sha256:" + "c" * 32
N, K = 120, 6


def _result(hit: np.ndarray, *, task="fewshot-10", fp=FP, ids=None, target=None, extra_rank=None) -> ScoreResult:
    """A ScoreResult whose per-sample table says which samples are right at rank 1 (else rank 2)."""
    card = get_card(task)
    n = len(hit)
    target = np.arange(n) % K if target is None else target
    pos = np.where(hit, 0, 1 if extra_rank is None else extra_rank).astype(np.int64)
    table = {"pos": pos, "target": np.asarray(target, dtype=np.int64)}
    metrics = M.evaluate(card, table)
    ci = {card.headline: {"low": 0.0, "high": 1.0, "level": 0.95, "n_resamples": 200, "seed": 0,
                          "method": "percentile bootstrap"}}
    ids = [f"s{i:04d}" for i in range(n)] if ids is None else ids
    return ScoreResult(task_id=task, headline=card.headline, metrics=metrics, ci=ci, n_samples=n, n_answered=n,
                       dataset={"name": "synth", "version": "1", "source": "synth", "fingerprint": fp},
                       submission={"path": "x.csv", "format": "ranked_csv", "sha256": "sha256:00", "bytes": 1},
                       code_version="minbench test", scored_at="2026-01-02T03:04:05Z",
                       per_sample=pd.DataFrame({"sample_id": ids}), table=table)


def _hits(p: float, seed: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < p


@pytest.fixture
def boards(tmp_path, monkeypatch):
    d = tmp_path / "boards"
    monkeypatch.setenv(L.ENV_DIR, str(d))
    return d


@pytest.fixture
def recipe(tmp_path):
    """A recipe file and the resolved config a run of it records."""
    path = tmp_path / "tiny-recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny-recipe", "task": "fewshot-10", "seeds": [0],
                                    "model": {"class_path": "x.Model", "init_args": {"lr": 0.1}},
                                    "data": {"class_path": "x.Data", "init_args": {}},
                                    "trainer": {"max_epochs": 5}}))
    from minbench.recipes import load_recipe

    config = load_recipe(path)
    config.update(recipe=str(path), seeds=[0, 1, 2], logger="csv", command="minbench run",
                  dataset={"name": "synth", "fingerprint": FP}, minbench_version="0")
    config["trainer"]["devices"] = 1
    return config


# ---- seeds and identity ---------------------------------------------------------------

def test_seeds_merge_into_one_entry_and_the_same_seed_replaces_only_itself(boards, recipe):
    per_seed = {0: _hits(0.5, 0), 1: _hits(0.6, 1), 2: _hits(0.7, 2)}
    for s, hit in per_seed.items():
        path = L.add_entry("fewshot-10", _result(hit), name="tiny-recipe", method="m", source="run",
                           config=recipe, seed=s)
    (e,) = L.load_board(path)["entries"]
    assert e["n_seeds"] == 3 and [r["seed"] for r in e["seeds"]] == [0, 1, 2] and e["modified"] == []
    top1 = [float(h.mean()) for h in per_seed.values()]
    assert e["metrics"]["top1"] == pytest.approx(np.mean(top1))
    assert e["std"]["top1"] == pytest.approx(np.std(top1, ddof=1))
    assert e["ci"]["top1"]["low"] < e["metrics"]["top1"] < e["ci"]["top1"]["high"]
    assert "mean of 3 seeds" in e["ci"]["top1"]["method"]
    # the per-sample file holds every seed and reproduces the entry's numbers
    s = L.entry_samples(path, e)
    assert s.seeds == [0, 1, 2] and s.n == N
    assert stats.point(get_card("fewshot-10").headline_metric, s.tables) == pytest.approx(e["metrics"]["top1"])
    # re-run of seed 1: replaces seed 1 only, one file left beside the board
    new = _hits(0.2, 9)
    L.add_entry("fewshot-10", _result(new), name="tiny-recipe", method="m", source="run", config=recipe, seed=1)
    (e2,) = L.load_board(path)["entries"]
    assert e2["id"] == e["id"] and e2["n_seeds"] == 3
    assert [r["metrics"]["top1"] for r in e2["seeds"]] == pytest.approx([top1[0], new.mean(), top1[2]])
    assert len(list(L.samples_folder(path).iterdir())) == 1


def test_a_modified_config_is_a_distinct_marked_entry(boards, recipe):
    path = L.add_entry("fewshot-10", _result(_hits(0.8, 0)), name="tiny-recipe", method="m", source="run",
                       config=recipe, seed=0)
    trial = json.loads(json.dumps(recipe))
    trial["trainer"]["max_epochs"] = 1
    trial["trainer"]["devices"] = 2  # hardware only: not a change of method
    L.add_entry("fewshot-10", _result(_hits(0.2, 1)), name="tiny-recipe", method="m", source="run",
                config=trial, seed=0)
    entries = {e["name"]: e for e in L.load_board(path)["entries"]}
    assert len(entries) == 2 and entries["tiny-recipe"]["metrics"]["top1"] == pytest.approx(_hits(0.8, 0).mean())
    (mod,) = [e for n, e in entries.items() if n != "tiny-recipe"]
    assert re.fullmatch(r"tiny-recipe\*[0-9a-f]{6}", mod["name"]) and mod["modified"] == ["trainer.max_epochs=1"]
    assert config_changes(recipe) == []
    md = render.render_markdown(render.group(L.load_boards([boards]), task="fewshot-10"))
    assert "(modified: trainer.max_epochs=1)" in md


# ---- paired comparisons ----------------------------------------------------------------

def _side(label, *hits, seeds=None, ids=None):
    seeds = seeds or list(range(len(hits)))
    ids = np.char.encode(np.asarray(ids or [f"s{i:04d}" for i in range(len(hits[0]))], dtype=str), "utf-8")
    tables = [{"pos": np.where(h, 0, 1).astype(np.int64), "target": np.arange(len(h)) % K} for h in hits]
    return C.Side(label, {"name": "synth", "fingerprint": FP}, S.Samples("classification", ids, seeds, tables), "")


def test_identical_submissions_differ_by_zero_with_an_interval_containing_it():
    h = _hits(0.6, 3)
    cmp = C.compare_sides("fewshot-10", _side("a", h), _side("b", h), n_resamples=300)
    for row in cmp.rows:
        assert row["diff"] == 0 and row["ci"]["low"] <= 0 <= row["ci"]["high"]
    top1 = cmp.rows[0]
    assert top1["mcnemar"]["p"] == 1.0


@pytest.mark.parametrize("k", [1, 5, 12])
def test_right_on_exactly_k_more_samples_gives_the_exact_mcnemar_p(k):
    a = _hits(0.5, 4)
    b = a.copy()
    b[np.flatnonzero(~a)[:k]] = True
    row = C.compare_sides("fewshot-10", _side("a", a), _side("b", b), n_resamples=200).rows[0]
    assert row["mcnemar"]["per_seed"][0]["only_b"] == k
    assert row["mcnemar"]["p"] == pytest.approx(binomtest(0, k, 0.5).pvalue, rel=1e-12)
    assert row["diff"] == pytest.approx(-k / N)


def test_seeds_pair_seed_with_seed():
    a0, a1, b1, b2 = (_hits(p, s) for p, s in ((0.5, 1), (0.6, 2), (0.4, 3), (0.3, 4)))
    cmp = C.compare_sides("fewshot-10", _side("a", a0, a1, seeds=[0, 1]), _side("b", b1, b2, seeds=[1, 2]),
                          n_resamples=100)
    assert cmp.seeds == "paired seeds 1"
    assert cmp.rows[0]["diff"] == pytest.approx(a1.mean() - b1.mean())


def test_refusals_name_both_sides(boards):
    L.add_entry("fewshot-10", _result(_hits(0.5, 0)), name="here", method="", source="submission")
    L.add_entry("fewshot-10", _result(_hits(0.5, 0), fp="sha256:" + "d" * 32), name="there", method="",
                source="submission")
    with pytest.raises(UserError, match=r"here is scored on .* and there on .*different datasets"):
        C.compare("fewshot-10", "here", "there", dirs=[boards])
    with pytest.raises(UserError, match=r"'nobody' is neither a predictions file nor an entry on a fewshot-10"):
        C.compare("fewshot-10", "here", "nobody", dirs=[boards])
    L.add_entry("fewshot-98", _result(_hits(0.5, 0), task="fewshot-98"), name="other-task", method="",
                source="submission")
    with pytest.raises(UserError, match=r"'other-task' is an entry of task fewshot-98, not fewshot-10"):
        C.compare("fewshot-10", "here", "other-task", dirs=[boards])
    with pytest.raises(UserError, match=r"a \(120 samples\) and b \(60 samples\) are scored on different sample"):
        C.compare_sides("fewshot-10", _side("a", _hits(0.5, 1)), _side("b", _hits(0.5, 1, n=60)))
    assert main(["compare", "--task", "fewshot-10", "here", "there", "--dir", str(boards)]) == 2


# ---- rank groups, broken files --------------------------------------------------------

def test_rank_groups_on_a_constructed_board(boards):
    rng = np.random.default_rng(0)
    base = rng.random(400) < 0.5
    strong = base | (rng.random(400) < 0.6)    # far better than both others
    near = base.copy()
    near[np.flatnonzero(~base)[:3]] = True      # 3 samples more than base: not separable
    ids = [f"s{i:04d}" for i in range(400)]
    for name, hit in (("base", base), ("strong", strong), ("near", near)):
        path = L.add_entry("fewshot-10", _result(hit, ids=ids, target=np.arange(400) % K), name=name, method="",
                           source="submission")
    groups = C.rank_groups(path, L.load_board(path), n_resamples=300)
    assert groups.ranks == {"strong": (1, 1), "near": (2, 3), "base": (2, 3)} and not groups.problems
    md = render.render_markdown(render.group(L.load_boards([boards]), task="fewshot-10"))
    assert re.search(r"\| 1 \| strong \|", md) and re.search(r"\| 2–3 \| near \|", md)


def test_truncated_or_missing_per_sample_file_is_reported_and_the_board_renders(boards, capsys, monkeypatch):
    for name, p in (("a", 0.7), ("b", 0.4), ("c", 0.5)):
        path = L.add_entry("fewshot-10", _result(_hits(p, 1)), name=name, method="", source="submission")
    board = L.load_board(path)
    files = {e["name"]: path.parent / e["samples"]["file"] for e in board["entries"]}
    data = files["a"].read_bytes()
    files["a"].write_bytes(data[: len(data) // 2])
    files["b"].unlink()
    view = render.board_view(path, L.load_board(path))
    groups = {r.entry["name"]: r.group for r in view.rows}
    assert groups["a"] == "1†" and groups["b"].endswith("†") and "†" not in groups["c"]
    text = " ".join(view.notes)
    assert "truncated" in text and "missing" in text
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["leaderboard", "--task", "fewshot-10", "--dir", str(boards)]) == 0
    assert "truncated" in capsys.readouterr().out
    with pytest.raises(UserError, match="truncated"):
        C.compare("fewshot-10", "a", "c", dirs=[boards])


def test_old_format_board_loads_as_one_seed_entries(tmp_path):
    # a board as minbench wrote it before seeds were kept (the shipped fewshot-98 board of 57d900e)
    old = json.loads((Path(__file__).parent / "data" / "leaderboard-v1-fewshot-98.json").read_text())
    assert old["schema"] == "minbench-leaderboard/1"
    (tmp_path / "fewshot-98--synth-1a2248f1.json").write_text(json.dumps(old))
    (path, board), = L.load_boards([tmp_path])
    (e,) = board["entries"]
    assert e["n_seeds"] == 1 and e["seeds"][0]["seed"] == old["entries"][0]["seed"] and e["samples"] is None
    md = render.render_markdown(render.group([(path, board)], task="fewshot-98"))
    assert "no per-sample results recorded: fewshot-small-cnn" in md


# ---- class-clustered resampling -------------------------------------------------------

def test_clustered_bootstrap_resamples_whole_classes():
    n, size = 40, 4
    clusters = np.arange(n) // size
    seen = []

    def record(f, w):
        seen.append(w[:, np.argsort(f["i"])])  # back to sample order (rows are grouped by class)
        return w.sum(axis=1)

    totals = stats.resample(record, {"i": np.arange(n, dtype=float)}, clusters=clusters, n_resamples=200, seed=0)
    w = np.concatenate(seen)
    per_class = w.reshape(len(w), n // size, size).sum(axis=2)
    assert np.all(per_class % size == 0)            # each drawn class brings its 4 images again
    assert (per_class == 0).any(axis=1).mean() > 0.5  # classes left out of most resamples
    assert np.all(totals == n)
    # i.i.d. resampling of the same samples does not keep classes whole
    seen.clear()
    stats.resample(record, {"i": np.arange(n, dtype=float)}, n_resamples=50, seed=0)
    assert not np.all(np.concatenate(seen).reshape(50, n // size, size).sum(axis=2) % size == 0)


def test_zeroshot_card_clusters_by_class():
    assert all(m.cluster == "class" for m in get_card("zeroshot").metrics)
    card = get_card("fewshot-98")
    assert {m.name for m in card.metrics if m.cluster} == {"macro_recall"}


# ---- floors ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("floors")
    F.make_dataset(folder, n_classes=5, n_train=3, n_test=4)
    return folder


def test_floors_are_computed_from_the_data(fixture_data):
    from minbench.scoring.floors import compute_floors

    data = load_task_data("fewshot-10", fixture_data)
    n_classes = len(data.card.classes(data.manifest))
    chance, prior = compute_floors(data)
    assert chance["metrics"]["top1"] == pytest.approx(1 / n_classes)
    assert chance["metrics"]["top3"] == pytest.approx(3 / n_classes)
    # prior: the most frequent training class first (ties by name): right on its test rows
    train = data.manifest.loc[data.manifest["fewshot_10"] == "train", "species"].value_counts()
    first = sorted(train.index, key=lambda c: (-train[c], c))[0]
    assert prior["metrics"]["top1"] == pytest.approx((data.rows["species"] == first).mean())
    seg = load_task_data("segmentation", fixture_data)
    floors = {f["name"]: f for f in compute_floors(seg)}
    from minbench.scoring.formats.mask_pngs import load_true_mask

    empty = np.mean([not load_true_mask(seg.folder, r).any() for r in seg.rows.itertuples(index=False)])
    assert floors["all background"]["metrics"]["miou"] == pytest.approx(empty)  # empty truth and prediction: 1
    assert floors["all mineral"]["metrics"]["pixel_accuracy"] < 1
    # size: every size row is a test row here, so no median floor (it would need a test label)
    assert compute_floors(load_task_data("size", fixture_data)) == []


def test_score_cli_writes_entry_samples_and_floors_and_compare_cli(fixture_data, boards, tmp_path, capsys):
    data = load_task_data("fewshot-10", fixture_data)
    classes = data.card.classes(data.manifest)
    for name, acc in (("good", 0.9), ("poor", 0.2)):
        F.ranked_submission(data.rows["sample_id"], data.rows["species"], classes, k=3, accuracy=acc,
                            seed=1).to_csv(tmp_path / f"{name}.csv", index=False)
        assert main(["score", "--task", "fewshot-10", "--predictions", str(tmp_path / f"{name}.csv"),
                     "--data", str(fixture_data), "--resamples", "50"]) == 0
    (path,) = boards.glob("*.json")
    board = L.load_board(path)
    assert [f["name"] for f in board["floors"]] == ["chance", "train prior"]
    elsewhere = tmp_path / "elsewhere"
    assert main(["score", "--task", "fewshot-10", "--predictions", str(tmp_path / "good.csv"), "--data",
                 str(fixture_data), "--resamples", "20", "--leaderboard-dir", str(elsewhere)]) == 0
    assert [p.name for p in elsewhere.glob("*.json")] == [path.name]
    good = next(e for e in board["entries"] if e["name"] == "good")
    s = L.entry_samples(path, good)
    result = score_submission("fewshot-10", tmp_path / "good.csv", task_data=data, n_resamples=10)
    assert stats.point(data.card.metrics[1], s.tables) == pytest.approx(result.metrics["top3"])
    capsys.readouterr()
    assert main(["compare", "--task", "fewshot-10", "good", str(tmp_path / "poor.csv"), "--data", str(fixture_data),
                 "--resamples", "50", "--json", str(tmp_path / "cmp.json")]) == 0
    out = json.loads((tmp_path / "cmp.json").read_text())
    assert out["metrics"][0]["diff"] == pytest.approx(result.metrics["top1"] - score_submission(
        "fewshot-10", tmp_path / "poor.csv", task_data=data, n_resamples=10).metrics["top1"])


# ---- where boards go, publishing, 80 columns -------------------------------------------

def test_publish_copies_the_entry_and_its_samples(boards, tmp_path):
    path = L.add_entry("fewshot-10", _result(_hits(0.5, 0)), name="mine", method="", source="submission")
    shipped = tmp_path / "shipped"
    out = L.publish("fewshot-10", "mine", dest_dir=shipped)
    assert out == shipped / path.name
    (e,) = L.load_board(out)["entries"]
    assert L.entry_samples(out, e).n == N
    with pytest.raises(UserError, match="no entry 'nope'"):
        L.publish("fewshot-10", "nope", dest_dir=shipped)


def test_board_at_80_columns_never_wraps_a_cell(boards, capsys, monkeypatch):
    for name, p in (("a-rather-long-entry-name-that-would-not-fit-at-all-in-eighty-columns", 0.5), ("b", 0.6)):
        L.add_entry("fewshot-10", _result(_hits(p, 2)), name=name, method="a long method " * 5,
                    source="submission")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["leaderboard", "--task", "fewshot-10", "--dir", str(boards)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "top1 [95% CI]" in out and "seeds" in out and "top5" not in out and "a long method" not in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 2  # one line per entry: nothing wrapped
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    assert main(["leaderboard", "--task", "fewshot-10", "--dir", str(boards), "--wide"]) == 0
    wide = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("┃"))
    assert wide.count("┃") == header.count("┃") + 7  # + method, source, 4 metrics, added (all columns)


# ---- coverage (slow) ------------------------------------------------------------------

@pytest.mark.slow
def test_interval_coverage_on_bernoulli_test_sets():
    """1,000 Bernoulli test sets of 300 samples at p = 0.3: the 95% interval of top-1
    covers the true mean 93-97% of the time."""
    spec = get_card("fewshot-10").headline_metric
    rng = np.random.default_rng(123)
    covered = 0
    for i in range(1000):
        hit = rng.random(300) < 0.3
        table = {"pos": np.where(hit, 0, T.NO_HIT), "target": np.zeros(300, np.int64)}
        ci = stats.seed_mean_interval(spec, [table], n_resamples=1000, seed=i)
        covered += ci.low <= 0.3 <= ci.high
    print(f"coverage {covered / 1000:.3f}")
    assert 0.93 <= covered / 1000 <= 0.97


def test_failed_board_write_leaves_no_per_sample_file_behind(boards, monkeypatch):
    path = L.add_entry("fewshot-10", _result(_hits(0.5, 0)), name="a", method="", source="submission")
    before = (path.read_bytes(), sorted(L.samples_folder(path).iterdir()))

    def broken(target, obj):
        raise OSError("disk full")

    monkeypatch.setattr(L.store, "write_json_atomic", broken)
    with pytest.raises(OSError):
        L.add_entry("fewshot-10", _result(_hits(0.7, 1)), name="b", method="", source="submission")
    assert (path.read_bytes(), sorted(L.samples_folder(path).iterdir())) == before


def test_publish_cli(boards, tmp_path, capsys):
    L.add_entry("fewshot-10", _result(_hits(0.5, 0)), name="mine", method="", source="submission")
    assert main(["leaderboard", "publish", "--task", "fewshot-10", "--name", "mine", "--to",
                 str(tmp_path / "shipped")]) == 0
    assert "published 'mine'" in capsys.readouterr().out
    assert main(["leaderboard", "publish", "--task", "fewshot-10", "--name", "nope", "--to",
                 str(tmp_path / "shipped")]) == 2


def test_a_multi_seed_trial_run_leaves_one_marked_entry(tiny_dataset, tmp_path, leaderboards):
    from test_run import run, tiny_recipe

    assert run(tiny_dataset, tiny_recipe(tmp_path), tmp_path / "run", "--seeds", "0", "1", "--max-epochs", "1") == 0
    (path,) = leaderboards.glob("fewshot-98--*.json")
    (e,) = L.load_board(path)["entries"]
    assert re.fullmatch(r"tiny-cnn\*[0-9a-f]{6}", e["name"]) and e["modified"] == ["trainer.max_epochs=1"]
    assert [r["seed"] for r in e["seeds"]] == [0, 1] and e["samples"]["seeds"] == [0, 1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert e["metrics"]["top1"] == pytest.approx(summary["metrics"]["top1"]["mean"])


def test_entries_on_boards_of_two_datasets_are_compared_on_the_one_data_names(boards, tmp_path):
    other = "sha256:" + "e" * 32
    for fp, p in ((FP, 0.5), (other, 0.7)):
        L.add_entry("fewshot-10", _result(_hits(p, 0), fp=fp), name="a", method="", source="submission")
        L.add_entry("fewshot-10", _result(_hits(0.5, 1), fp=fp), name="b", method="", source="submission")
    with pytest.raises(UserError, match=r"a and b are both on boards of 2 datasets .* choose one with --data"):
        C.compare("fewshot-10", "a", "b", dirs=[boards])
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.json").write_text(json.dumps({"name": "synth", "version": "1", "source": "synth",
                                                   "fingerprint": other, "n_samples": 120}))
    cmp = C.compare("fewshot-10", "a", "b", dirs=[boards], data_dir=data, n_resamples=50)
    assert cmp.a.dataset["fingerprint"] == other and cmp.rows[0]["a"] == pytest.approx(_hits(0.7, 0).mean())
