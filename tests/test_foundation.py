"""The shared contracts: task cards, the manifest schema, atomic writes, the CLI's error path."""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest

from minbench import cards
from minbench.cli import main
from minbench.data import manifest
from minbench.errors import UserError
from minbench.io import atomic_path, write_json_atomic


def test_every_task_card_loads_with_its_headline():
    ids = cards.task_ids()
    assert set(ids) == {"fewshot-10", "fewshot-98", "fewshot-360", "zeroshot", "segmentation", "size"}
    for card in cards.all_cards().values():
        assert card.headline_metric.name == card.headline
    assert cards.get_card("size").headline_metric.higher_is_better is False


def test_unknown_task_names_the_known_ones():
    with pytest.raises(UserError, match="fewshot-10"):
        cards.get_card("fewshot-11")


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.pop("kind"), "lacks 'kind'"),
    (lambda c: c["metrics"].update(headline="nope"), "headline metric 'nope'"),
    (lambda c: c["metrics"]["list"].append({"name": "x", "kind": "bogus"}), "kind 'bogus' is unknown"),
    (lambda c: c["submission"].update(format="xml"), "submission.format"),
    (lambda c: c.pop("version"), "lacks 'version'"),
    (lambda c: c.update(version="1.0"), "version '1.0' must be a positive integer"),
    (lambda c: c["submission"].update(max_ranks=0), "max_ranks 0"),
])
def test_broken_card_is_refused_with_a_message(tmp_path, mutate, message):
    import yaml

    raw = yaml.safe_load(cards.get_card("fewshot-10").path.read_text())
    mutate(raw)
    path = tmp_path / "fewshot-10.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=message):
        cards.load_card(path)


def test_card_without_max_ranks_gets_the_default(tmp_path):
    import yaml

    raw = yaml.safe_load(cards.get_card("fewshot-10").path.read_text())
    raw["submission"].pop("max_ranks")
    path = tmp_path / "fewshot-10.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cards.load_card(path).max_ranks == cards.DEFAULT_MAX_RANKS


@pytest.fixture(scope="module")
def every_split(tmp_path_factory):
    from minbench.scoring import fixtures as F

    folder = tmp_path_factory.mktemp("splits")
    F.make_dataset(folder, n_classes=4, n_train=2, n_test=3, n_seg=3, n_size=5)
    return manifest.read_manifest(folder)


def test_cards_own_the_rows_of_each_split(every_split):
    df = every_split
    few = cards.get_card("fewshot-98")
    train, test = few.rows(df, "train"), few.rows(df, "test")
    assert (train["fewshot_98"] == "train").all() and len(train) == 8
    assert (test["fewshot_98"] == "test").all() and len(test) == 12
    assert list(test.index) == list(few.positions(df, "test"))  # manifest positions kept, in order
    assert list(few.classes(df)) == sorted(set(train["species"]))
    zs = cards.get_card("zeroshot")
    zs_test, zs_train = zs.rows(df, "test"), zs.rows(df, "train")
    assert zs_test["zeroshot"].all() and len(zs_test) == 6
    # train: every row whose species is not a zero-shot species (no leak of the unseen classes)
    assert not set(zs_train["species"]) & set(zs_test["species"])
    assert len(zs_train) + len(zs_test) == len(df)
    assert list(zs.classes(df)) == sorted(set(zs_test["species"]))
    for task, column, n, n_val in (("segmentation", "segmentation", 2, 1), ("size", "size", 5, 0)):
        card = cards.get_card(task)
        assert card.rows(df, "train").empty and not card.has_train
        assert card.rows(df, "test")[column].all() and len(card.rows(df, "test")) == n
        # the validation part (split.validation) is set apart from the scored rows
        assert len(card.rows(df, "validation")) == n_val and card.rows(df, "validation")[column].all()
        assert not set(card.rows(df, "validation").index) & set(card.rows(df, "test").index)


def test_cards_refuse_a_manifest_without_the_split(every_split):
    card = cards.get_card("fewshot-10")
    with pytest.raises(UserError, match="DS: has no column 'fewshot_10'"):
        card.rows(every_split.drop(columns="fewshot_10"), "test", where="DS")
    with pytest.raises(UserError, match="DS: no test rows for task fewshot-10"):
        card.rows(every_split.assign(fewshot_10=""), "test", where="DS")


def test_cards_own_the_monitor_fractions_and_ranks():
    few, size, seg = (cards.get_card(t) for t in ("fewshot-10", "size", "segmentation"))
    assert (few.monitor, few.monitor_mode) == ("val/top1", "max")
    assert (size.monitor, size.monitor_mode) == ("test/mae", "min")  # test-only: no validation carve
    assert (seg.monitor, seg.monitor_mode) == ("test/miou", "max")
    assert few.is_fraction("top5") and few.is_fraction("macro_recall")
    assert size.is_fraction("coverage") and not size.is_fraction("mae") and not size.is_fraction("r2")
    assert size.is_fraction("seen_accuracy") and not size.is_fraction("top1_seconds")  # the name fallback
    assert all(c.version >= 1 and c.max_ranks >= 1 for c in cards.all_cards().values())
    assert cards.task_ids()[:3] == ["fewshot-10", "fewshot-98", "fewshot-360"]  # natural order


def _rows(n=4):
    rows = []
    for i in range(n):
        row = manifest.empty_row()
        row.update(sample_id=f"s{i}", image_path=f"img/{i}.jpg", width=64, height=48,
                   species="quartz" if i % 2 else "кварц-free", fewshot_10="train" if i < 2 else "test",
                   bbox=manifest.format_box([1, 2, 30.04, 40]), source="synth")
        rows.append(row)
    return pd.DataFrame(rows)


def test_manifest_round_trip_keeps_unicode_and_fingerprint(tmp_path):
    df = _rows()
    info = manifest.write_dataset(tmp_path, df, name="t", version="1", source="synth")
    back = manifest.read_manifest(tmp_path)
    assert back["species"].tolist() == df["species"].tolist()
    assert manifest.fingerprint(back) == info.fingerprint == manifest.read_info(tmp_path).fingerprint
    assert manifest.parse_box(back.loc[0, "bbox"]) == (1.0, 2.0, 30.0, 40.0)
    changed = back.copy()
    changed.loc[0, "species"] = "calcite"
    assert manifest.fingerprint(changed) != info.fingerprint


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.loc.__setitem__((1, "sample_id"), "s0"), "duplicate sample_id 's0'"),
    (lambda d: d.loc.__setitem__((0, "fewshot_10"), "val"), "fewshot_10 has value 'val'"),
    (lambda d: d.loc.__setitem__((0, "segmentation"), True), "without mask_path"),
    (lambda d: d.loc.__setitem__((0, "size"), True), "positive size_cm"),
    (lambda d: d.loc.__setitem__((0, "cube_bbox"), "[1,2]"), "not a box"),
])
def test_manifest_validation_names_the_problem(edit, message):
    df = manifest.normalise(_rows())
    edit(df)
    problems = manifest.validate(df)
    assert problems and message in problems[0]


def test_failed_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "board.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["board.json"]


def test_leftovers_are_those_of_writers_no_longer_running(tmp_path):
    from minbench.io import leftovers_of

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has ended and been reaped: what a killed writer leaves
    target = tmp_path / "data"
    mine = tmp_path / f".data.{os.getpid()}.abc123.tmp"
    killed = tmp_path / f".data.{dead.pid}.xyz789.tmp"
    replaced = tmp_path / f".data.old-{dead.pid}"
    unknown = tmp_path / ".data.nopid.tmp"
    other = tmp_path / f".database.{dead.pid}.q.tmp"
    for p in (mine, killed, replaced, unknown, other):
        p.mkdir()
    assert sorted(leftovers_of(target)) == sorted([killed, replaced])
    assert sorted(leftovers_of(target, all_writers=True)) == sorted([mine, killed, replaced, unknown])
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert tmp.name.startswith(f".data.{os.getpid()}.") and tmp not in leftovers_of(target)


def test_cli_user_error_is_one_line_and_nonzero(tmp_path, capsys):
    code = main(["data", "check", "--data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
