"""Scoring real files end to end, and every kind of bad submission refused with a clear message."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn import metrics as skm

from minbench.cli import main
from minbench.data.manifest import read_manifest
from minbench.errors import UserError
from minbench.scoring import fixtures as F
from minbench.scoring.formats import _common, ranked_csv
from minbench.scoring.formats.mask_pngs import load_true_mask, write_score_map
from minbench.scoring.score import score_submission, write_score_json
from minbench.cards import get_card


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scoring_ds")
    F.make_dataset(folder, n_classes=6, n_train=2, n_test=5, n_seg=6, n_size=15)
    return folder


def _rows(ds, task):
    return get_card(task).rows(read_manifest(ds), "test").reset_index(drop=True)


def _ranked_csv(ds, path, task="fewshot-10", accuracy=0.6, seed=0, k=4):
    df = read_manifest(ds)
    card = get_card(task)
    rows = card.rows(df, "test").reset_index(drop=True)
    sub = F.ranked_submission(rows.sample_id, rows.species, card.classes(df), k=k, accuracy=accuracy,
                              seed=seed, path=path)
    return sub, rows


def _score_cli(ds, task, pred, *extra):
    return main(["score", "--task", task, "--predictions", str(pred), "--data", str(ds), *extra])


# ---- happy paths ----------------------------------------------------------------------

def test_ranked_csv_scores_like_sklearn(ds, tmp_path, leaderboards):
    sub, rows = _ranked_csv(ds, tmp_path / "sub.csv", seed=1)
    result = score_submission("fewshot-10", tmp_path / "sub.csv", ds)
    classes = list(get_card("fewshot-10").classes(read_manifest(ds)))
    truth = rows.species.to_numpy()
    hits = [(sub[[f"pred_{j}" for j in range(1, k + 1)]].to_numpy() == truth[:, None]).any(axis=1).mean()
            for k in (1, 3)]
    assert result.metrics["top1"] == pytest.approx(hits[0])
    assert result.metrics["top3"] == pytest.approx(hits[1])
    assert result.metrics["macro_recall"] == pytest.approx(skm.balanced_accuracy_score(truth, sub.pred_1))
    ci = result.ci["top1"]
    assert ci["low"] <= result.metrics["top1"] <= ci["high"] and ci["level"] == 0.95
    assert result.n_samples == len(rows) == 30
    assert result.dataset["fingerprint"].startswith("sha256:")
    assert set(classes) >= set(sub.pred_1)


def test_shuffled_rows_bom_crlf_and_spaces_are_accepted(ds, tmp_path, leaderboards):
    sub, _ = _ranked_csv(ds, tmp_path / "a.csv", seed=2)
    plain = score_submission("fewshot-10", tmp_path / "a.csv", ds)
    shuffled = sub.sample(frac=1, random_state=0)
    text = shuffled.to_csv(index=False, lineterminator="\r\n").replace(",", " , ")
    (tmp_path / "b.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8") + b"\r\n")
    other = score_submission("fewshot-10", tmp_path / "b.csv", ds)
    assert other.metrics == plain.metrics


def test_fewer_ranks_than_k_and_trailing_empty_cells(ds, tmp_path, leaderboards):
    sub, rows = _ranked_csv(ds, tmp_path / "s.csv", k=3, accuracy=1.0, seed=3)
    sub.loc[sub.index[:5], "pred_3"] = ""
    sub.to_csv(tmp_path / "s.csv", index=False)
    r = score_submission("fewshot-10", tmp_path / "s.csv", ds)
    assert r.metrics["top10"] == r.metrics["top3"]  # only submitted ranks count


def test_size_csv_with_abstentions(ds, tmp_path, leaderboards):
    rows = _rows(ds, "size")
    rng = np.random.default_rng(0)
    pred = rows.size_cm.to_numpy() * rng.normal(1, 0.1, len(rows))
    text = ["sample_id,size_cm"] + [f"{s},{p:.3f}" for s, p in zip(rows.sample_id[:-4], pred[:-4])]
    text += [f"{rows.sample_id.iloc[-4]},"]  # empty cell abstains; the last 3 rows are absent
    (tmp_path / "size.csv").write_text("\n".join(text) + "\n")
    r = score_submission("size", tmp_path / "size.csv", ds)
    a = slice(0, len(rows) - 4)
    true = rows.size_cm.to_numpy()
    given = np.round(pred[a], 3)
    assert r.metrics["mae"] == pytest.approx(skm.mean_absolute_error(true[a], given))
    assert r.metrics["r2"] == pytest.approx(skm.r2_score(true[a], given))
    assert r.metrics["coverage"] == pytest.approx((len(rows) - 4) / len(rows))
    assert r.n_answered == len(rows) - 4


def _write_masks(ds, folder, *, flip=(), size=None, mode="L", maps=None, seed=0):
    """Masks (the truth, half flipped for ``flip``) and with ``maps`` (8 or 16) noisy score
    maps of that many bits, by the format's writer; returns ``(pred, true[, map])``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for row in _rows(ds, "segmentation").itertuples():
        true = load_true_mask(ds, row)
        pred = true.copy()
        if row.sample_id in flip:
            pred[: pred.shape[0] // 2] = ~pred[: pred.shape[0] // 2]
        im = Image.fromarray((pred * 255).astype(np.uint8), mode="L").convert(mode)
        if size:
            im = im.resize(size)
        im.save(folder / f"{row.sample_id}.png")
        if maps:
            top = (1 << maps) - 1
            score = (np.clip(rng.normal(0.3 + 0.4 * pred, 0.3), 0, 1) * top).astype(np.uint8 if maps == 8 else np.uint16)
            write_score_map(folder, row.sample_id, score)
            items.append((pred, true, score))
        else:
            items.append((pred, true))
    return items


@pytest.mark.parametrize("bits", [8, 16])
def test_mask_folder_and_zip_score_like_sklearn(ds, tmp_path, leaderboards, bits):
    items = _write_masks(ds, tmp_path / "masks", flip={"s1", "s4"}, maps=bits)
    r = score_submission("segmentation", tmp_path / "masks", ds)
    ious = [skm.jaccard_score(t.ravel(), p.ravel(), zero_division=1.0) for p, t, _ in items]
    assert r.metrics["miou"] == pytest.approx(np.mean(ious))
    assert 0 < r.metrics["miou"] < 1
    truth = np.concatenate([t.ravel() for _, t, _ in items])
    scores = np.concatenate([m.ravel() for _, _, m in items])
    assert r.metrics["pxap"] == pytest.approx(skm.average_precision_score(truth, scores), abs=1e-9)
    per_image = [skm.average_precision_score(t.ravel(), m.ravel()) for _, t, m in items if t.any()]
    assert r.metrics["mean_ap"] == pytest.approx(np.mean(per_image), abs=1e-9)
    with zipfile.ZipFile(tmp_path / "masks.zip", "w") as zf:
        for p in sorted((tmp_path / "masks").rglob("*.png")):  # one common folder inside the zip is fine
            zf.write(p, f"masks/{p.relative_to(tmp_path / 'masks').as_posix()}")
    z = score_submission("segmentation", tmp_path / "masks.zip", ds)
    assert z.metrics == r.metrics
    assert r.per_sample["iou"].tolist() == pytest.approx(ious)
    assert np.isnan(r.per_sample["ap"]).sum() == sum(not t.any() for _, t, _ in items)


def test_masks_without_maps_show_no_pxap(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "masks", flip={"s2"})
    assert _score_cli(ds, "segmentation", tmp_path / "masks", "--name", "binary") == 0
    shown = capsys.readouterr().out
    assert re.search(r"pxap\s+│\s+—", shown) and re.search(r"mean_ap\s+│\s+—", shown), shown
    out = json.loads((tmp_path / "masks.score.json").read_text())
    assert out["metrics"]["pxap"] is None and out["metrics"]["mean_ap"] is None and out["metrics"]["miou"] > 0
    (board,) = leaderboards.glob("segmentation--*.json")
    data = json.loads(board.read_text())
    assert data["entries"][0]["metrics"]["pxap"] is None
    assert [m["name"] for m in data["metrics"]][-2:] == ["pxap", "mean_ap"]
    # the floors' constant maps: PxAP = the share of mineral pixels
    rows = _rows(ds, "segmentation")
    truth = np.concatenate([load_true_mask(ds, r).ravel() for r in rows.itertuples()])
    assert data["floors"][0]["metrics"]["pxap"] == pytest.approx(truth.mean())
    assert main(["leaderboard", "--task", "segmentation", "--format", "markdown"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "| binary |" in x)
    assert line.rstrip(" |").split(" | ")[-5:-3] == ["—", "—"], line


def test_score_cli_writes_json_and_leaderboard(ds, tmp_path, leaderboards, capsys):
    _ranked_csv(ds, tmp_path / "mine.csv")
    assert _score_cli(ds, "fewshot-10", tmp_path / "mine.csv", "--method", "random walk", "--per-sample") == 0
    out = json.loads((tmp_path / "mine.score.json").read_text())
    assert out["task"] == "fewshot-10" and out["headline"] == "top1" and len(out["per_sample"]) == 30
    # the card's protocol version travels with every score and entry
    assert out["task_version"] == get_card("fewshot-10").version
    boards = list(leaderboards.glob("fewshot-10--scoring-fixture-*.json"))
    assert len(boards) == 1
    entry = json.loads(boards[0].read_text())["entries"][0]
    assert entry["name"] == "mine" and entry["source"] == "submission" and entry["method"] == "random walk"
    assert entry["metrics"]["top1"] == out["metrics"]["top1"]
    assert entry["task_version"] == out["task_version"]
    assert "top1" in capsys.readouterr().out


def test_write_score_json_round_trips_nan_as_null(ds, tmp_path, leaderboards):
    rows = _rows(ds, "size")
    (tmp_path / "one.csv").write_text(f"sample_id,size_cm\n{rows.sample_id[0]},3.5\n")
    r = score_submission("size", tmp_path / "one.csv", ds)
    write_score_json(r, tmp_path / "one.json")
    data = json.loads((tmp_path / "one.json").read_text())
    assert data["metrics"]["r2"] is None and data["metrics"]["mae"] == pytest.approx(abs(3.5 - rows.size_cm[0]))


# ---- bad input: one line naming the file/row, nonzero exit, board untouched -----------

def _bad(ds, tmp_path, leaderboards, capsys, task, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    leaderboards.mkdir(parents=True, exist_ok=True)
    before = sorted(p.name for p in leaderboards.iterdir())
    code = _score_cli(ds, task, path)
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert str(path) in err or path.name in err, err
    assert sorted(p.name for p in leaderboards.iterdir()) == before
    assert not (tmp_path / (path.stem + ".score.json")).exists()
    return err


def _good_lines(ds, task="fewshot-10"):
    rows = _rows(ds, task)
    return [f"{s},{sp}" for s, sp in zip(rows.sample_id, rows.species)]


@pytest.mark.parametrize("case, edit, message", [
    ("duplicate id", lambda L: L + [L[0]], "appears more than once (lines 2, 32"),
    ("missing id", lambda L: L[:-1], "1 test samples of task fewshot-10 have no row"),
    ("extra id", lambda L: L + ["nobody,quartz"], "line 32: sample_id 'nobody' is not a test sample"),
    ("unknown species", lambda L: L[:3] + [L[3].split(",")[0] + ",qaurtz"] + L[4:],
     "line 5, pred_1: unknown species 'qaurtz' (closest: quartz"),
    ("empty id", lambda L: L[:2] + ["," + L[2].split(",")[1]] + L[3:], "line 4: empty sample_id"),
])
def test_bad_rows_are_refused(ds, tmp_path, leaderboards, capsys, case, edit, message):
    lines = edit(_good_lines(ds))
    _bad(ds, tmp_path, leaderboards, capsys, "fewshot-10", "bad.csv", "sample_id,pred_1\n" + "\n".join(lines) + "\n",
         message)


def test_repeated_species_in_a_row(ds, tmp_path, leaderboards, capsys):
    lines = [line + (",calcite,calcite" if i == 6 else ",,") for i, line in enumerate(_good_lines(ds))]
    err = _bad(ds, tmp_path, leaderboards, capsys, "fewshot-10", "rep.csv",
               "sample_id,pred_1,pred_2,pred_3\n" + "\n".join(lines) + "\n", "ranked more than once")
    assert "line 8" in err


def test_gap_in_ranks(ds, tmp_path, leaderboards, capsys):
    lines = _good_lines(ds)
    lines = [f"{line},,calcite" if i == 2 else f"{line},," for i, line in enumerate(lines)]
    _bad(ds, tmp_path, leaderboards, capsys, "fewshot-10", "gap.csv",
         "sample_id,pred_1,pred_2,pred_3\n" + "\n".join(lines) + "\n", "line 4: pred_2 is empty but pred_3 is not")


def test_more_than_ten_ranks(ds, tmp_path, leaderboards, capsys):
    header = "sample_id," + ",".join(f"pred_{j}" for j in range(1, 12))
    lines = [line + "," * 10 for line in _good_lines(ds)]
    _bad(ds, tmp_path, leaderboards, capsys, "fewshot-10", "eleven.csv", header + "\n" + "\n".join(lines) + "\n",
         "11 ranks; at most 10")


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("\ufeff\r\n  \n", "empty file"),
    ("sample_id,pred_1\n", "header only, no rows"),
    ("id,pred_1\na,quartz\n", "first column must be 'sample_id', found 'id'"),
    ("sample_id,guess\na,quartz\n", "unexpected column 'guess'"),
    ("sample_id\na\n", "no prediction columns"),
    ("sample_id,pred_2\na,quartz\n", "rank columns must be pred_1..pred_1"),
    ("sample_id,pred_1\nc0_3,quartz,calcite\n", "line 2 has 3 fields, the header has 2"),
    (b"sample_id,pred_1\nc0_3,qu\xe9rtz\n", "not UTF-8"),
])
def test_bad_files_are_refused(ds, tmp_path, leaderboards, capsys, content, message):
    _bad(ds, tmp_path, leaderboards, capsys, "fewshot-10", "f.csv", content, message)


def test_file_far_too_large_is_refused_before_reading(ds, tmp_path, leaderboards, capsys, monkeypatch):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:  # sparse: large on paper, nothing written
        f.truncate(_common.CSV_SLACK_BYTES + ranked_csv.RANKED_BYTES_PER_ROW * 30 + 1)

    def no_read(*a, **k):
        raise AssertionError("read a file that should have been refused by its size")

    monkeypatch.setattr(ranked_csv, "read_csv_strings", no_read)
    code = _score_cli(ds, "fewshot-10", path)
    err = capsys.readouterr().err
    assert code != 0 and "far larger than any ranked submission" in err


@pytest.mark.parametrize("value, message", [
    ("NaN", "is not a finite number"),
    ("inf", "is not a finite number"),
    ("-3", "is not a positive size"),
    ("0", "is not a positive size"),
    ("1500", "is absurd (more than 1000 cm)"),
    ("12cm", "is not a number"),
])
def test_bad_sizes(ds, tmp_path, leaderboards, capsys, value, message):
    rows = _rows(ds, "size")
    lines = [f"{s},{v}" for s, v in zip(rows.sample_id, rows.size_cm)]
    lines[4] = f"{rows.sample_id[4]},{value}"
    err = _bad(ds, tmp_path, leaderboards, capsys, "size", "sz.csv", "sample_id,size_cm\n" + "\n".join(lines) + "\n",
               message)
    assert "line 6" in err


def test_size_wrong_columns_and_extra_ids(ds, tmp_path, leaderboards, capsys):
    _bad(ds, tmp_path, leaderboards, capsys, "size", "c.csv", "sample_id,size\nm0,3\n",
         "expected exactly sample_id,size_cm")
    _bad(ds, tmp_path, leaderboards, capsys, "size", "e.csv", "sample_id,size_cm\nm0,3\nc0_0,4\n",
         "line 3: sample_id 'c0_0' is not a test sample of task size")


def _bad_masks(ds, tmp_path, leaderboards, capsys, path, message):
    leaderboards.mkdir(parents=True, exist_ok=True)
    code = _score_cli(ds, "segmentation", path)
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert list(leaderboards.iterdir()) == []
    return err


def test_mask_of_wrong_size(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m", size=(7, 5))
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "s0.png: mask is 7x5 but the image is 12x8")


def test_mask_of_wrong_mode(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m", mode="RGB")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "mode RGB; a mask has one channel")


def test_mask_in_wrong_format(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m")
    Image.open(tmp_path / "m" / "s2.png").convert("L").save(tmp_path / "m" / "s2.png", format="JPEG")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "s2.png: not a PNG file (it is JPEG)")


def test_mask_missing_extra_and_not_png(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m")
    (tmp_path / "m" / "s4.png").unlink()
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "1 test samples have no mask (first: s4.png)")
    _write_masks(ds, tmp_path / "m")
    Image.new("L", (12, 8)).save(tmp_path / "m" / "zz9.png")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "is not a test sample of task segmentation")
    (tmp_path / "m" / "zz9.png").unlink()
    # s3 is in the card's validation part: not scored, so refused in a submission
    assert list(get_card("segmentation").rows(read_manifest(ds), "validation")["sample_id"]) == ["s3"]
    Image.new("L", (12, 8)).save(tmp_path / "m" / "s3.png")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "s3.png' is not a test sample of task "
               "segmentation (1 such masks); submit exactly the test samples (a validation photo is not scored")
    (tmp_path / "m" / "s3.png").unlink()
    (tmp_path / "m" / "notes.txt").write_text("hi")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "'notes.txt' is not a PNG mask")


@pytest.mark.parametrize("member, message", [
    ("../s0.png", "escapes the folder"),
    ("/abs/s0.png", "escapes the folder"),
    ("a/b/s0.png", "is in a subfolder"),
    ("readme.md", "is not a PNG mask"),
])
def test_zip_members_that_escape_or_are_not_png(ds, tmp_path, leaderboards, capsys, member, message):
    _write_masks(ds, tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as zf:
        for p in sorted((tmp_path / "m").iterdir()):
            zf.write(p, p.name)
        zf.writestr(member, b"\x89PNG\r\n\x1a\n")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m.zip", message)


def test_a_board_of_the_first_card_version_grows_the_map_columns(ds, tmp_path, leaderboards):
    """A board written before the card had pxap (version 1: three metrics, floors without
    it) gains the columns and floors when a submission with maps is added."""
    _write_masks(ds, tmp_path / "old")
    assert _score_cli(ds, "segmentation", tmp_path / "old", "--name", "old") == 0
    (board,) = leaderboards.glob("segmentation--*.json")
    data = json.loads(board.read_text())
    data["metrics"] = data["metrics"][:3]
    for row in data["entries"] + data["floors"] + [s for e in data["entries"] for s in e["seeds"]]:
        row["metrics"] = {k: v for k, v in row["metrics"].items() if k not in ("pxap", "mean_ap")}
    board.write_text(json.dumps(data))
    _write_masks(ds, tmp_path / "new", maps=8)
    assert _score_cli(ds, "segmentation", tmp_path / "new", "--name", "new") == 0
    data = json.loads(board.read_text())
    assert [m["name"] for m in data["metrics"]] == ["miou", "dice", "pixel_accuracy", "pxap", "mean_ap"]
    entries = {e["name"]: e for e in data["entries"]}
    assert "pxap" not in entries["old"]["metrics"] and entries["new"]["metrics"]["pxap"] > 0
    assert all("pxap" in f["metrics"] for f in data["floors"])


def _bad_maps(ds, tmp_path, leaderboards, capsys, path, message):
    """A refused submission with score maps: one line naming the file, exit 2, nothing recorded."""
    err = _bad_masks(ds, tmp_path, leaderboards, capsys, path, message)
    assert _score_cli(ds, "segmentation", path) == 2
    capsys.readouterr()
    assert not list(tmp_path.glob("*.score.json"))
    return err


def test_score_map_of_another_size_than_its_mask(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m", maps=16)
    write_score_map(tmp_path / "m", "s4", np.zeros((8, 11), np.uint16))
    _bad_maps(ds, tmp_path, leaderboards, capsys, tmp_path / "m",
              f"{tmp_path / 'm' / 'maps' / 's4.png'}: score map is 11x8 but its mask (the image) is 12x8")


def test_colour_score_map(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m", maps=8)
    Image.new("RGB", (12, 8), (10, 200, 30)).save(tmp_path / "m" / "maps" / "s1.png")
    _bad_maps(ds, tmp_path, leaderboards, capsys, tmp_path / "m",
              "maps/s1.png: score map is RGB (3 channels); a score map has one channel (grey), 8 or 16 bits")


def test_score_map_without_its_mask(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m", maps=8)
    (tmp_path / "m" / "s4.png").unlink()
    _bad_maps(ds, tmp_path, leaderboards, capsys, tmp_path / "m", "maps/s4.png: a score map without its mask s4.png")
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as zf:  # the same in a zip, naming its member
        for p in sorted((tmp_path / "m").rglob("*.png")):
            zf.write(p, p.relative_to(tmp_path / "m").as_posix())
    _bad_maps(ds, tmp_path, leaderboards, capsys, tmp_path / "m.zip", "maps/s4.png: a score map without its mask")


def test_score_maps_for_some_images_only(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m", maps=16)
    (tmp_path / "m" / "maps" / "s2.png").unlink()
    _bad_maps(ds, tmp_path, leaderboards, capsys, tmp_path / "m",
              "maps/s2.png is missing: score maps are given for 4 of 5 test samples; give every mask its map, "
              "or no maps at all")


def test_zip_bomb_is_refused_before_decompressing(ds, tmp_path, leaderboards, capsys):
    _write_masks(ds, tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((tmp_path / "m").iterdir()):
            if p.name != "s0.png":
                zf.write(p, p.name)
        zf.writestr("s0.png", b"\0" * (64 << 20))  # 64 MiB of zeros: a tiny archive
    err = _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "bomb.zip", "refused")
    assert "MiB" in err


def test_not_a_folder_or_zip(ds, tmp_path, leaderboards, capsys):
    (tmp_path / "m.tar").write_bytes(b"not a zip")
    _bad_masks(ds, tmp_path, leaderboards, capsys, tmp_path / "m.tar", "not a folder or a zip of PNG masks")


def test_unknown_task_and_missing_file(ds, tmp_path, leaderboards, capsys):
    assert main(["score", "--task", "fewshot-11", "--predictions", str(tmp_path / "x.csv"), "--data", str(ds)]) == 2
    assert "fewshot-10" in capsys.readouterr().err
    assert _score_cli(ds, "fewshot-10", tmp_path / "nope.csv") == 2
    assert "nope.csv: no such file" in capsys.readouterr().err


def test_reader_api_aligns_rows_with_the_test_order(ds, tmp_path):
    rows = _rows(ds, "fewshot-10")
    classes = get_card("fewshot-10").classes(read_manifest(ds))
    lines = [f"{s},{sp}" for s, sp in zip(rows.sample_id, rows.species)][::-1]
    (tmp_path / "r.csv").write_text("sample_id,pred_1\n" + "\n".join(lines) + "\n")
    sub = ranked_csv.read_ranked_csv(tmp_path / "r.csv", task_id="fewshot-10", test_ids=pd.Index(rows.sample_id),
                            classes=classes, max_ranks=10)
    assert (classes[sub.ranked[:, 0]] == rows.species.to_numpy()).all()
    with pytest.raises(UserError, match="line 3"):
        (tmp_path / "r2.csv").write_text("sample_id,pred_1\n\n" + lines[0] + ",x\n")
        ranked_csv.read_ranked_csv(tmp_path / "r2.csv", task_id="fewshot-10", test_ids=pd.Index(rows.sample_id),
                          classes=classes, max_ranks=10)


def test_unwritable_outputs_are_one_line_errors(ds, tmp_path, leaderboards, capsys):
    _ranked_csv(ds, tmp_path / "ok.csv")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _score_cli(ds, "fewshot-10", tmp_path / "ok.csv", "--out", str(blocker / "x.json")) == 2
    err = capsys.readouterr().err
    assert "cannot write the score JSON" in err and err.count("\n") == 1
    assert _score_cli(ds, "fewshot-10", tmp_path / "ok.csv", "--leaderboard", str(blocker / "b.json")) == 2
    err = capsys.readouterr().err
    assert "cannot update the leaderboard" in err and err.count("\n") == 1


LIGHT_SCORER = """
import sys
from minbench.cli import main
from minbench.scoring.score import score_submission
r = score_submission("fewshot-10", sys.argv[1], sys.argv[2])
assert 0 <= r.metrics["top1"] <= 1
assert main(["score", "--task", "fewshot-10", "--predictions", sys.argv[1], "--data", sys.argv[2]]) == 0
assert main(["leaderboard"]) == 0
heavy = sorted(m for m in ("torch", "torchmetrics", "torchvision", "lightning", "timm", "sklearn")
               if m in sys.modules)
assert not heavy, heavy
"""


def test_scorer_and_leaderboard_import_no_deep_learning_framework(ds, tmp_path, leaderboards):
    import os
    import subprocess
    import sys
    from pathlib import Path

    _ranked_csv(ds, tmp_path / "sub.csv")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "benchmark")}
    done = subprocess.run([sys.executable, "-c", LIGHT_SCORER, str(tmp_path / "sub.csv"), str(ds)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_card_submission_format_has_a_registered_reader():
    from minbench.cards import SUBMISSION_FORMATS
    from minbench.scoring.formats import SUBMISSION_FORMATS as READERS

    assert sorted(READERS.names()) == sorted(SUBMISSION_FORMATS)
    with pytest.raises(UserError, match="unknown submission format"):
        READERS.get("parquet")
