"""The embedded ``synth`` dataset: determinism, recorded truth, schema, split shapes, CLI."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from minbench.cli import main
from minbench.data import manifest
from minbench.data.synth import GENERATOR_VERSION, generate
from minbench.data.synth.scene import CUBE_EDGE_CM
from minbench.errors import UserError

FEWSHOT = ("fewshot_10", "fewshot_98", "fewshot_360")


def _hashes(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "dataset.json"}


@pytest.fixture(scope="module")
def df(tiny_dataset):
    return manifest.read_manifest(tiny_dataset)


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tiny_dataset, tmp_path):
    again = tmp_path / "again"
    generate(again, seed=0, size="tiny", workers=2)
    assert (again / manifest.MANIFEST_FILE).read_bytes() == (tiny_dataset / manifest.MANIFEST_FILE).read_bytes()
    assert _hashes(again) == _hashes(tiny_dataset)
    other = tmp_path / "other"
    generate(other, seed=1, size="tiny", workers=1)
    assert manifest.read_info(other).fingerprint != manifest.read_info(tiny_dataset).fingerprint


def test_manifest_validates_and_records_the_generator(tiny_dataset, df):
    assert manifest.validate(df) == []
    info = manifest.read_info(tiny_dataset)
    assert (info.name, info.source, info.version) == ("synth", "synth", GENERATOR_VERSION)
    assert info.extra["seed"] == 0 and info.extra["size"] == "tiny"
    assert info.extra["cube_edge_cm"] == CUBE_EDGE_CM
    assert info.n_samples == len(df) >= 60
    assert (df["source"] == "synth").all() and (df["species"] != "").all()
    assert (df["description"].str.len() > 40).all()
    assert ((df["width"] == 256) & (df["height"] == 192)).all()
    for p in df["image_path"]:
        assert (tiny_dataset / p).is_file()


def test_mask_is_the_crystals_inside_the_specimen_box(tiny_dataset, df):
    gaps = []
    for _, row in df.iterrows():
        mask = cv2.imread(str(tiny_dataset / row["mask_path"]), cv2.IMREAD_UNCHANGED)
        img = cv2.imread(str(tiny_dataset / row["image_path"]))
        assert mask.dtype == np.uint8 and mask.shape == (row["height"], row["width"])
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask > 0).sum() > 0, row["sample_id"]
        x1, y1, x2, y2 = (int(v) for v in manifest.parse_box(row["bbox"]))
        inside = np.zeros_like(mask, bool)
        inside[y1:y2, x1:x2] = True
        assert not ((mask > 0) & ~inside).any(), row["sample_id"]
        # The masked pixels look like something other than the backdrop far from the specimen.
        background = ~inside
        for box in [manifest.parse_box(row["cube_bbox"]) or (0, 0, 0, 0)] + json.loads(row["text_boxes"] or "[]"):
            bx1, by1, bx2, by2 = (int(v) for v in box)
            background[max(0, by1 - 3):by2 + 3, max(0, bx1 - 3):bx2 + 3] = False
        gaps.append(np.linalg.norm(img[mask > 0].mean(0) - img[background].mean(0)))
    assert np.median(gaps) > 30


def test_size_truth_is_a_3d_measurement_not_the_box_the_photo_shows(df):
    from minbench.data.synth.scene import SIZE_ROUND_CM

    assert ((df["size_cm"] / SIZE_ROUND_CM).round(6) % 1 == 0).all()   # recorded to the millimetre
    assert df["size_cm"].between(1.4, 25.1).all()
    box = df["bbox"].map(manifest.parse_box)
    from_box = box.map(lambda b: max(b[2] - b[0], b[3] - b[1])) / df["px_per_cm"]
    ratio = from_box / df["size_cm"]
    # The box misses the depth and the specimen's own distance: mostly short, never wildly off.
    assert (abs(ratio - 1) > 0.01).mean() > 0.8
    assert ratio.between(0.35, 1.6).all() and ratio.median() < 1


def test_cube_box_matches_the_scale_and_mostly_sits_beside_the_specimen(df):
    ok, apart, with_cube = 0, 0, 0
    for _, row in df.iterrows():
        cube = manifest.parse_box(row["cube_bbox"])
        if cube is None:   # some photos have no cube
            continue
        with_cube += 1
        cx1, cy1, cx2, cy2 = cube
        assert 0 <= cx1 < cx2 <= row["width"] and 0 <= cy1 < cy2 <= row["height"]
        edge_px = CUBE_EDGE_CM * row["px_per_cm"]
        # Yaw 25-65 and pitch 20-40 degrees show three faces, 1.30-1.68 edges wide and 1.19-1.78
        # tall under a 20-40 degree lens; a cube cut by the frame is narrower.
        ok += 1.28 < (cx2 - cx1) / edge_px < 1.70 and 1.15 < (cy2 - cy1) / edge_px < 1.80
        x1, y1, x2, y2 = manifest.parse_box(row["bbox"])
        apart += cx2 <= x1 or x2 <= cx1 or cy2 <= y1 or y2 <= cy1
        for tx1, ty1, tx2, ty2 in json.loads(row["text_boxes"] or "[]"):
            assert tx2 <= x1 or x2 <= tx1 or ty2 <= y1 or y2 <= ty1, "label overlaps the specimen"
    assert ok >= 0.85 * with_cube and apart >= 0.85 * with_cube and with_cube >= 0.85 * len(df)


def test_fewshot_subsets_are_nested_stratified_and_frequency_ordered(tiny_dataset, df):
    info = manifest.read_info(tiny_dataset)
    classes = [set(df.loc[df[c] != "", "species"]) for c in FEWSHOT]
    assert classes[0] < classes[1] < classes[2]
    assert [len(c) for c in classes] == [info.extra["classes"][c] for c in FEWSHOT]
    for col in FEWSHOT:
        sub = df[df[col] != ""]
        train = set(sub.loc[sub[col] == "train", "species"])
        test = set(sub.loc[sub[col] == "test", "species"])
        assert test and test <= train, col
    # A row keeps one role in every subset that holds it.
    roles = df[list(FEWSHOT)].apply(lambda r: {v for v in r if v}, axis=1)
    assert (roles.map(len) <= 1).all()
    counts = df[df["fewshot_360"] != ""].groupby("species").size()
    assert counts[list(classes[0])].min() >= counts[list(classes[2] - classes[1])].max()


def test_zeroshot_classes_are_never_seen_in_fewshot_photos(tiny_dataset, df):
    info = manifest.read_info(tiny_dataset)
    zs = df[df["zeroshot"]]
    fewshot_rows = df[(df[list(FEWSHOT)] != "").any(axis=1)]
    assert len(zs) and len(set(zs["species"])) == info.extra["classes"]["zeroshot"]
    assert not set(zs["species"]) & set(fewshot_rows["species"])
    assert len(fewshot_rows) + len(zs) == len(df)
    held = set(info.extra["held_out_families"])
    assert held
    sat = {s.strip() for text in fewshot_rows["satellites"] for s in text.split(",") if s.strip()}
    assert not sat & held


def test_segmentation_and_size_sets(df):
    seg = df[df["segmentation"]]
    assert 5 <= len(seg) and (seg["fewshot_360"] == "test").all() and (seg["mask_path"] != "").all()
    assert seg["species"].nunique() >= 3
    # The fewshot-10 classes' test rows come first (the default CAM classifier knows them).
    f10_test = df[df["fewshot_10"] == "test"]
    assert set(f10_test["sample_id"]) <= set(seg["sample_id"]) or set(seg["sample_id"]) <= set(f10_test["sample_id"])
    size = df[df["size"]]
    assert len(size) >= 10 and (size["size_cm"] > 0).all()


def test_cli_generates_then_the_manifest_reads_back(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["data", "generate", "--size", "tiny", "--out", str(out), "--seed", "3"]) == 0
    assert "images/s" in capsys.readouterr().err  # a notice: stderr
    df = manifest.read_manifest(out)
    assert len(df) == manifest.read_info(out).n_samples
    # Generating again replaces the dataset whole.
    assert main(["data", "generate", "--size", "tiny", "--out", str(out), "--seed", "3"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_to_replace_a_folder_that_is_not_a_synth_dataset(tmp_path, capsys):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    assert main(["data", "generate", "--size", "tiny", "--out", str(precious)]) == 2
    err = capsys.readouterr().err
    assert "refusing to replace" in err and len(err.strip().splitlines()) == 1
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_an_interrupted_run_leaves_no_dataset_behind(tmp_path, monkeypatch):
    from minbench.data.synth import driver as gen_mod

    real = gen_mod.render_sample
    calls = []

    def flaky(task):
        calls.append(task)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(gen_mod, "render_sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "data", size="tiny", workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(size="huge"), "--size 'huge'"),
    (dict(size="tiny", workers=0), "--workers 0"),
    (dict(size="tiny", seed=-1), "--seed -1"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        generate(tmp_path / "x", **kwargs)
