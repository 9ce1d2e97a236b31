"""The real-release adapter on a tiny fake release in the exact real layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from fixtures_release import FULL_HEADER, SUBSETS, build_release, write_csv
from minbench.cli import main
from minbench.data import manifest
from minbench.data.check import check_dataset
from minbench.data.release import prepare
from minbench.data.release_splits import seeded_split
from minbench.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def release(tmp_path):
    return build_release(tmp_path / "release")


def _full_lines(rel):
    return (rel.root / "minerals_full.csv").read_text(encoding="utf-8").splitlines(keepends=True)


def test_prepare_maps_the_release_into_the_manifest(release, tmp_path):
    out = tmp_path / "out"
    report = prepare(release.root, out)
    df = manifest.read_manifest(out)
    recovered = next(s for s, how in release.segm.items() if how == "image_from_segm")
    expected_ids = [r["id"] for r in release.rows if r["id"] not in release.missing or r["id"] == recovered]
    assert df["sample_id"].tolist() == expected_ids
    assert report.rows_total == len(release.rows) and report.rows_in_manifest == len(expected_ids)
    # Rows without a photo: counted by collection, listed, left out.
    assert report.missing_by_collection == release.missing_by_collection
    missing = pd.read_csv(out / "missing_images.csv", dtype=str)
    assert set(missing["sample_id"]) == release.missing - {recovered}
    assert set(missing["reason"]) == {"no_image"}
    saved = json.loads((out / "prepare_report.json").read_text(encoding="utf-8"))
    assert saved["missing_by_collection"] == release.missing_by_collection
    # Every path resolves against the output folder and the size is the displayed one.
    for rel, w, h in zip(df["image_path"], df["width"], df["height"]):
        with Image.open(out / rel) as im:
            assert ImageOps.exif_transpose(im).size == (w, h)
    # Text fields: English species lower-cased and stripped, Russian intact.
    row = df.set_index("sample_id").loc[release.rows[0]["id"]]
    assert (row["species"], row["species_ru"], row["variety"]) == ("quartz", "кварц", "аметист")
    assert row["collection"] == release.rows[0]["collection"] and row["source"] == "mineralimage5k"
    assert "native copper" in set(df["species"])
    assert set(df.loc[df["satellites"] != "", "satellites"]) == {"pyrite, calcite"}
    assert manifest.parse_box(row["bbox"]) == (12.0, 8.0, 36.0, 24.0)  # the 0.82-confidence box
    assert json.loads(row["text_boxes"]) == [[0.0, 28.0, 24.0, 32.0]]
    assert json.loads(row["mineral_boxes"])[1]["confidence"] == 0.82


def test_splits_sizes_and_zeroshot(release, tmp_path):
    out = tmp_path / "out"
    prepare(release.root, out)
    df = manifest.read_manifest(out).set_index("sample_id")
    fewshot_classes = set()
    for col, classes in SUBSETS.items():
        member = df[df[col] != ""]
        assert set(member.index) == release.subsets[col] & set(df.index)
        assert set(member["species"]) == set(classes)
        for species, group in member.groupby("species"):  # stratified: every class in both
            assert set(group[col]) == {"train", "test"}, (col, species)
            assert (group[col] == "test").sum() == max(1, round(len(group) * 0.2))
        fewshot_classes |= set(classes)
    assert df["zeroshot"].tolist() == [s not in fewshot_classes for s in df["species"]]
    assert set(df.loc[df["zeroshot"], "species"]) == {"realgar", "beryl", "native copper"}
    sizes = df.loc[df["size"], "size_cm"].to_dict()
    assert sizes == pytest.approx(release.sizes)  # '2,5' read as 2.5, joined through path_final
    info = manifest.read_info(out)
    assert "seeded stratified" in info.extra["split_policy"]["fewshot_10"]
    # the release names a class by its English name only: no class-level text beyond the label
    assert info.class_texts == {} and "class_text_policy" in info.extra
    # the cube edge under the one key the size task reads (the authors' 1.27 cm)
    assert info.extra[manifest.CUBE_EDGE_KEY] == info.cube_edge_cm == 1.27
    assert "reference_cube_cm" not in info.extra


def test_segmentation_masks_match_their_images(release, tmp_path):
    out = tmp_path / "out"
    report = prepare(release.root, out)
    df = manifest.read_manifest(out).set_index("sample_id")
    seg = df[df["segmentation"]]
    assert set(seg.index) == set(release.segm)
    for sid, row in seg.iterrows():
        mask = np.asarray(Image.open(out / row["mask_path"]))
        assert mask.shape == (row["height"], row["width"]) and set(np.unique(mask)) == {0, 255}
    recovered = next(s for s, how in release.segm.items() if how == "image_from_segm")
    assert df.loc[recovered, "image_path"].startswith("raw/segm/img/")
    assert report.segmentation == {"rows": 3, "image_from_segm": 1, "mask_resized": 1, "masks_unmatched": 1}


def test_exif_rotated_photo_gets_displayed_size_and_boxes(release, tmp_path):
    out = tmp_path / "out"
    prepare(release.root, out)
    row = manifest.read_manifest(out).set_index("sample_id").loc[release.rotated]
    with Image.open(out / row["image_path"]) as im:
        stored, orientation = im.size, im.getexif()[0x0112]
    assert orientation == 6 and (row["width"], row["height"]) == (stored[1], stored[0])
    # Paint the release's normalised box in the stored frame and let PIL turn it as a viewer does.
    paint = np.zeros((stored[1], stored[0]), np.uint8)
    paint[int(0.25 * stored[1]):int(0.75 * stored[1]), int(0.25 * stored[0]):int(0.75 * stored[0])] = 255
    canvas = Image.fromarray(paint)
    canvas.getexif()[0x0112] = orientation
    ys, xs = np.nonzero(np.asarray(ImageOps.exif_transpose(canvas)))
    assert manifest.parse_box(row["bbox"]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_archives_and_headerless_csv_give_the_same_manifest(tmp_path):
    folder = build_release(tmp_path / "folder")
    packed = build_release(tmp_path / "packed", archives=True, header=False)
    assert not (packed.root / "data").exists() and (packed.root / "mineral_images.zip").is_file()
    a = prepare(folder.root, tmp_path / "out_a")
    b = prepare(packed.root, tmp_path / "out_b")
    assert a.fingerprint == b.fingerprint
    assert any("no header row; columns taken by their documented position" in w for w in b.warnings)
    assert (tmp_path / "out_b/raw/mineral_images/data").is_dir()  # extracted, not linked
    assert (tmp_path / "out_a/raw/mineral_images").is_symlink()   # linked, not copied


def test_prepare_twice_is_idempotent_and_leaves_no_temporaries(tmp_path):
    rel = build_release(tmp_path / "packed", archives=True)
    out = tmp_path / "out"
    first = prepare(rel.root, out)
    extracted = (out / "raw/mineral_images").stat().st_mtime_ns
    second = prepare(rel.root, out)
    assert first.fingerprint == second.fingerprint == manifest.read_info(out).fingerprint
    assert (out / "raw/mineral_images").stat().st_mtime_ns == extracted  # not extracted again
    leftovers = [p.name for p in out.rglob(".*") if p.name not in (".prepare.lock",)
                 and not p.name.endswith(".minbench-extracted.json")]
    assert leftovers == []


def test_renamed_headers_use_aliases_then_positions(release, tmp_path):
    lines = _full_lines(release)
    header = FULL_HEADER.copy()
    header[1] = "image_path"          # an alias
    header[5] = "Вид"                 # unknown: falls back to position 6
    header[12] = "Description"        # alias, any case
    lines[0] = ",".join(header) + "\n"
    (release.root / "minerals_full.csv").write_text("".join(lines), encoding="utf-8")
    report = prepare(release.root, tmp_path / "out")
    assert any("taken by position: ru_species <- column 6 'Вид'" in w for w in report.warnings)
    df = manifest.read_manifest(tmp_path / "out")
    assert df["species_ru"].iloc[0] == "кварц" and df["description"].iloc[0].startswith("Quartz")


def test_bom_is_accepted(release, tmp_path):
    ref = prepare(release.root, tmp_path / "ref")
    path = release.root / "minerals_full.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert prepare(release.root, tmp_path / "out").fingerprint == ref.fingerprint


def _rows(release, columns):
    return [[r[c] for c in columns] for r in release.rows]


@pytest.mark.parametrize("case, message", [
    ("header_without_path", r"minerals_full.csv: no column for 'path' .*14 columns, not the documented 15"),
    ("headerless_14_columns", r"minerals_full.csv line 1: 14 fields, expected 15"),
    ("short_row_in_the_middle", r"minerals_full.csv line 7: 4 fields, expected 15"),
])
def test_wrong_columns_are_refused_naming_file_and_column(release, tmp_path, case, message):
    path = release.root / "minerals_full.csv"
    if case == "header_without_path":
        cols = [c for c in FULL_HEADER if c != "path"]
        write_csv(path, cols, _rows(release, cols))
    elif case == "headerless_14_columns":
        write_csv(path, None, _rows(release, FULL_HEADER[:14]))
    else:
        rows = _rows(release, FULL_HEADER)
        write_csv(path, FULL_HEADER, rows[:5] + [["7_1", "data/x.JPG", "1", "2"]] + rows[5:])
    with pytest.raises(UserError, match=message):
        prepare(release.root, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.parquet").exists()


@pytest.mark.parametrize("cut", ["inside_quotes", "short_row"])
def test_truncated_csv_skips_the_cut_row_and_says_which(release, tmp_path, cut):
    path = release.root / "minerals_full.csv"
    text = path.read_text(encoding="utf-8").rstrip("\n")
    last = text.rsplit("\n", 1)[1]
    n_lines = text.count("\n") + 1
    cut_at = last.index('"[{') + 10 if cut == "inside_quotes" else last.index(",data/") + 8
    path.write_text(text[: len(text) - len(last) + cut_at], encoding="utf-8")
    report = prepare(release.root, tmp_path / "out")
    assert any(f"line {n_lines}" in w and "truncated" in w for w in report.warnings), report.warnings
    assert report.rows_total == len(release.rows) - 1
    assert release.rows[-1]["id"] not in set(manifest.read_manifest(tmp_path / "out")["sample_id"])


def test_non_utf8_csv_is_refused_naming_the_file(release, tmp_path):
    path = release.root / "minerals_full.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("cp1251"))
    with pytest.raises(UserError, match=r"minerals_full.csv: not UTF-8 text \(byte 0x\w\w at offset \d+\)"):
        prepare(release.root, tmp_path / "out")


def test_split_csv_with_split_column_and_headerless_split_csv(release, tmp_path):
    ids = sorted(release.subsets["fewshot_10"])
    write_csv(release.root / "minerals_10.csv", ["id", "split"],
              [[sid, "test" if i % 3 == 0 else ("val" if i % 3 == 1 else "train")] for i, sid in enumerate(ids)])
    rows98 = [r for r in release.rows if r["id"] in release.subsets["fewshot_98"]]
    write_csv(release.root / "minerals_98.csv", None, [[r["en_name"], r["path"]] for r in rows98])
    report = prepare(release.root, tmp_path / "out")
    df = manifest.read_manifest(tmp_path / "out").set_index("sample_id")
    for i, sid in enumerate(ids):
        if sid in df.index:
            assert df.loc[sid, "fewshot_10"] == ("test" if i % 3 == 0 else "train")  # val joins train
    assert set(df.index[df["fewshot_98"] != ""]) == release.subsets["fewshot_98"] & set(df.index)
    assert report.split_policy["fewshot_10"] == "minerals_10.csv: its split column"


def test_missing_pieces_are_user_errors(release, tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        prepare(release.root / "minerals_full.csv", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no minerals_full.csv"):
        prepare(empty, tmp_path / "out")


def test_seeded_split_is_deterministic_and_order_free():
    ids = [f"1_{i}" for i in range(40)]
    species = ["a" if i % 4 else "b" for i in range(40)] 
    first = seeded_split(ids, species)
    again = seeded_split(ids[::-1], species[::-1])
    assert first == again
    assert sum(v == "test" for v in first.values()) == round(30 * 0.2) + round(10 * 0.2)
    assert seeded_split(["x"], ["lonely"]) == {"x": "train"}
    assert seeded_split(ids, species, seed=1) != first


def test_cli_prepare_then_check_end_to_end(release, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "prepare", "--source", str(release.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "missing in 10_meteor" in printed and "fewshot_10 train / test" in printed
    assert main(["data", "check", "--data", str(out)]) == 0
    assert "OK: the dataset is sound" in capsys.readouterr().out


def test_cli_errors_are_one_line_without_traceback(release, tmp_path):
    path = release.root / "minerals_full.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("cp1251"))
    env = {"PYTHONPATH": str(REPO / "benchmark"), "PATH": "/usr/bin:/bin", "MINBENCH_HOME": str(tmp_path / "h")}
    run = subprocess.run([sys.executable, "-m", "minbench.cli", "data", "prepare", "--source", str(release.root),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "minerals_full.csv: not UTF-8" in run.stderr
    assert "Traceback" not in run.stderr


def test_nested_subsets_assign_each_photo_the_same_split(release, tmp_path):
    prepare(release.root, tmp_path / "out")
    df = manifest.read_manifest(tmp_path / "out")
    both = df[(df["fewshot_10"] != "") & (df["fewshot_360"] != "")]
    assert len(both) and (both["fewshot_10"] == both["fewshot_360"]).all()
    assert check_dataset(tmp_path / "out").warnings == []


def test_hostile_release_archive_stops_prepare_and_writes_nothing_outside(tmp_path):
    import zipfile

    rel = build_release(tmp_path / "packed", archives=True)
    with zipfile.ZipFile(rel.root / "mineral_images.zip", "a") as zf:
        zf.writestr("../../escaped.txt", b"pwned")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"mineral_images.zip: member '../../escaped.txt' would land outside"):
        prepare(rel.root, out)
    assert not (tmp_path / "escaped.txt").exists() and not (out / "raw" / "mineral_images").exists()
    assert not (out / "manifest.parquet").exists()


def test_box_cells_in_every_form_the_release_scripts_wrote():
    from minbench.data.photo import ImageInfo
    from minbench.data.release_boxes import best_mineral_box, text_boxes_pixels

    info = ImageInfo(width=200, height=100, orientation=1)
    python_repr = "[{'label': 'a gem', 'confidence': 0.9, 'box': [0.5, 0.5, 1.2, 1.0]}]"  # clipped to the image
    assert best_mineral_box(python_repr, info) == "[100.0, 50.0, 200.0, 100.0]"
    assert best_mineral_box('[{"confidence": 0.4, "box": [20, 10, 60, 30]}]', info) == "[20.0, 10.0, 60.0, 30.0]"
    assert best_mineral_box("[]", info) == "" and best_mineral_box("", info) == ""
    assert best_mineral_box("[{'box': [0.1, 0.2", info) is None
    polygon = "[[[0.1, 0.1], [0.3, 0.1], [0.3, 0.2], [0.1, 0.2]]]"
    assert json.loads(text_boxes_pixels(polygon, info)) == [[20.0, 10.0, 60.0, 20.0]]
    assert text_boxes_pixels("[]", info) == "[]" and text_boxes_pixels("", info) == ""
    assert text_boxes_pixels("[[[0.1, 0.1]]]", info) is None


def test_partial_release_prepares_what_is_there_and_names_what_is_not(release, tmp_path, capsys):
    import json
    import shutil

    for name in ("minerals_98.csv", "minerals_360.csv", "minerals_size.csv"):
        (release.root / name).unlink()
    shutil.rmtree(release.root / "segm")
    out = tmp_path / "partial"
    assert main(["data", "prepare", "--source", str(release.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    unavailable = json.loads((out / "dataset.json").read_text())["unavailable_tasks"]
    assert set(unavailable) == {"fewshot-98", "fewshot-360", "size", "segmentation"}
    assert "minerals_98.csv" in unavailable["fewshot-98"] and "minerals_size.csv" in unavailable["size"]
    for task in unavailable:
        assert sum(line.startswith(f"unavailable: {task}:") for line in printed.splitlines()) == 1
    df = manifest.read_manifest(out)
    assert (df["fewshot_10"] == "test").any() and not (df["fewshot_98"] != "").any()

    assert main(["run", "--task", "fewshot-98", "--data", str(out), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fewshot-98: not available" in err and "minerals_98.csv" in err
    assert not (tmp_path / "run").exists()
    sub = tmp_path / "sub.csv"
    sub.write_text("sample_id,pred_1\n")
    assert main(["score", "--task", "fewshot-98", "--data", str(out), "--predictions", str(sub)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fewshot-98: not available" in err and "minerals_98.csv" in err
