"""The segmentation card's validation part, the ``val`` threshold and the refinements."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from minbench.cards import get_card
from minbench.cli import main
from minbench.data.manifest import read_manifest
from minbench.errors import UserError


def _frame(n_per_species: dict[str, int]) -> pd.DataFrame:
    species = [s for s, n in n_per_species.items() for _ in range(n)]
    return pd.DataFrame({"sample_id": [f"s{i:03d}" for i in range(len(species))], "species": species,
                         "segmentation": True})


# --------------------------------------------------------------------------- the part
def test_the_validation_part_is_seeded_stratified_and_disjoint():
    card = get_card("segmentation")
    frame = _frame({"a": 10, "b": 5, "c": 5, "d": 1})
    frame.loc[len(frame)] = ["outside", "a", False]  # not in the segmentation set
    validation, test = card.positions(frame, "validation"), card.positions(frame, "test")
    assert np.array_equal(validation, card.positions(frame.copy(), "validation"))  # deterministic
    assert not set(validation) & set(test) and len(validation) + len(test) == 21
    assert len(frame) - 1 not in set(validation) | set(test)
    # 0.2 of each class by the running total: a 2, b 1, c 1, d 0 (21 rows -> 4)
    assert frame["species"].iloc[validation].value_counts().to_dict() == {"a": 2, "b": 1, "c": 1}
    # the order of the rows does not choose them: the same ids after a shuffle
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    ids = set(frame["sample_id"].iloc[validation])
    assert set(shuffled["sample_id"].iloc[card.positions(shuffled, "validation")]) != set() and \
        len(card.positions(shuffled, "validation")) == len(ids)


def test_a_sealed_manifest_reads_the_part_back():
    """A public dataset blanks the species of exactly the test rows: the rows that kept
    theirs are the validation part, the same rows as on the original."""
    card = get_card("segmentation")
    frame = _frame({"a": 10, "b": 5})
    validation = card.positions(frame, "validation")
    sealed = frame.copy()
    sealed.loc[sealed.index[card.positions(frame, "test")], "species"] = ""
    assert np.array_equal(card.positions(sealed, "validation"), validation)


def test_bad_validation_fields_are_one_line(tmp_path):
    from minbench.cards import load_card

    text = get_card("segmentation").path.read_text()
    for bad, message in (("{share: 1.5, seed: 0}", "share"), ("{share: 0.2, seed: -1}", "seed"),
                         ("{share: 0.2, size: 3}", "mapping")):
        path = tmp_path / "segmentation.yaml"
        path.write_text(text.replace("{share: 0.2, seed: 0, stratify: species}", bad))
        with pytest.raises(UserError, match=message):
            load_card(path)


def test_validation_masks_are_public_test_masks_are_not(tiny_dataset):
    from minbench.data.seal import seal_frame

    card = get_card("segmentation")
    manifest = read_manifest(tiny_dataset)
    sealed = seal_frame(manifest, card)
    validation, test = card.positions(manifest, "validation"), card.positions(manifest, "test")
    assert len(validation) and (sealed["mask_path"].iloc[validation] == manifest["mask_path"].iloc[validation]).all()
    assert (sealed["mask_path"].iloc[test] == "").all() and (sealed["species"].iloc[test] == "").all()


def test_the_scorer_scores_the_test_part_only(tiny_dataset, tmp_path):
    """A submission of the test part alone is complete; a validation photo in it is refused."""
    from minbench.scoring.formats.mask_pngs import write_mask
    from minbench.scoring.score import score_submission

    card = get_card("segmentation")
    manifest = read_manifest(tiny_dataset)
    sub = tmp_path / "sub"
    for r in card.rows(manifest, "test").itertuples():
        write_mask(sub / f"{r.sample_id}.png", np.ones((r.height, r.width), bool))
    result = score_submission("segmentation", sub, tiny_dataset, n_resamples=10)
    assert result.n_samples == len(card.positions(manifest, "test")) and result.task_version == 3
    extra = card.rows(manifest, "validation").iloc[0]
    write_mask(sub / f"{extra.sample_id}.png", np.ones((extra.height, extra.width), bool))
    with pytest.raises(UserError, match="validation photo is not scored"):
        score_submission("segmentation", sub, tiny_dataset, n_resamples=10)


# --------------------------------------------------------------------------- val
def test_val_picks_the_level_that_maximises_validation_miou():
    from minbench.models import masking

    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    score = np.where(truth, 0.6, 0.3).astype(np.float32)
    score[5:7, 5:15] = 0.37  # part of the mineral is weak: only the level 0.35 keeps it alone
    level, curve = masking.choose_val_level(get_card("segmentation"), [score], [truth])
    assert level == pytest.approx(0.35) and curve[level] == pytest.approx(1.0)
    assert curve[0.4] < 1.0 and curve[0.3] < 1.0
    with pytest.raises(RuntimeError, match="validation part"):
        masking.threshold_cam(score, "val")
    assert masking.threshold_cam(score, "val", level).sum() == truth.sum()
    with pytest.raises(UserError, match="no validation photos"):
        masking.choose_val_level(get_card("segmentation"), [], [])


# --------------------------------------------------------------------------- refinements
def _blurred_case():
    """A photo of a bright ellipse on a dark textured ground, and a blurred, offset CAM."""
    import cv2

    noise = cv2.GaussianBlur(np.random.default_rng(0).random((96, 128, 3)).astype(np.float32), (0, 0), 2)
    photo = (noise / noise.max() * 60 + 30).astype(np.uint8)
    truth = np.zeros((96, 128), np.uint8)
    cv2.ellipse(truth, (64, 48), (34, 22), 20, 0, 360, 1, -1)
    photo[truth > 0] = (200, 170, 60)
    cam = cv2.GaussianBlur(np.roll(truth.astype(np.float32), 6, axis=1), (0, 0), 12)
    return photo, truth > 0, cam / cam.max()


def _best_iou(score, truth) -> float:
    """The IoU at the level ``val`` would choose (the scorer's, over its grid)."""
    from minbench.models.masking import choose_val_level

    level, curve = choose_val_level(get_card("segmentation"), [score], [truth])
    return curve[level]


@pytest.mark.parametrize("name", ["grabcut", "superpixels"])
def test_a_refinement_moves_a_blurred_cam_toward_the_shape(name):
    from minbench.models.refine import refine

    photo, truth, cam = _blurred_case()
    refined = refine(name, photo, cam)
    assert refined.shape == cam.shape and 0 <= refined.min() and refined.max() <= 1
    assert _best_iou(refined, truth) > _best_iou(cam, truth) + 0.05
    assert np.array_equal(refine(name, photo, cam), refined)  # one photo, one answer
    assert refine("none", photo, cam) is cam


def test_a_refinements_settings_are_checked_and_completed_by_its_defaults():
    from minbench.models.refine import check_refine, refine

    assert check_refine("grabcut", None) == {"sure_fg": 0.8, "sure_bg": 0.1, "iterations": 3}
    assert check_refine("grabcut", {"sure_fg": 0.9, "iterations": 6}) == {"sure_fg": 0.9, "sure_bg": 0.1,
                                                                         "iterations": 6}
    assert check_refine("superpixels", {"segments": 80}) == {"segments": 80, "compactness": 10.0}
    assert check_refine("none", {}) == {}
    for name, settings, says in [("grabcut", {"sure_fgd": 0.9}, "grabcut has no setting 'sure_fgd'"),
                                 ("grabcut", {"sure_fg": 1.5}, "sure_fg: 1.5 is not a number in [0, 1]"),
                                 ("grabcut", {"iterations": 2.5}, "iterations: 2.5 is not an integer"),
                                 ("grabcut", {"sure_fg": 0.2, "sure_bg": 0.3}, "must be below its sure_fg"),
                                 ("superpixels", {"segments": "many"}, "segments: 'many' is not an integer"),
                                 ("none", {"sure_fg": 0.9}, "none has no setting")]:
        with pytest.raises(UserError, match=re.escape(says)):
            check_refine(name, settings)
    # the settings are used: other seeds give another map
    photo, truth, cam = _blurred_case()
    assert refine("grabcut", photo, cam, {"sure_fg": 0.9, "sure_bg": 0.2, "iterations": 6}).shape == cam.shape
    assert not np.array_equal(refine("grabcut", photo, cam, {"sure_fg": 0.3, "sure_bg": 0.2}),
                              refine("grabcut", photo, cam))


# --------------------------------------------------------------------------- runs
@pytest.mark.parametrize("bad", [["--refine", "nonsense"], ["--threshold", "val", "--threshold-value", "0.3"],
                                 ["--set", "model.init_args.refine=3"],
                                 ["--refine", "grabcut", "--set", "model.init_args.refine_args={sure_fg: 2}"]])
def test_bad_refine_settings_are_one_line_exit_2(bad, tiny_dataset, tmp_path, capsys):
    rc = main(["run", "--task", "segmentation", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"),
               "--quiet", "--no-leaderboard", *bad])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("recipe", ["segmentation-gradcam-grabcut", "segmentation-gradcam-superpixels"])
def test_the_refined_recipes_land_on_the_board_with_maps(recipe, tiny_dataset, tmp_path, monkeypatch, leaderboards):
    from test_segmentation_pipeline import tiny_checkpoint

    monkeypatch.chdir(tmp_path)
    ckpt = tiny_checkpoint(tmp_path / "clf.ckpt")
    out = tmp_path / recipe
    assert main(["run", "--task", "segmentation", "--data", str(tiny_dataset), "--config", recipe, "--out", str(out),
                 "--quiet", "--classifier", str(ckpt), "--set", "data.init_args.image_size=48"]) == 0
    seed = out / "seed0"
    validation = json.loads((seed / "validation.json").read_text())
    assert validation["threshold"] == "val" and 0 < validation["threshold_value"] < 1
    assert validation["refine"] == recipe.rsplit("-", 1)[1] and validation["n_images"] > 0
    assert len(list((seed / "predictions" / "maps").glob("*.png"))) == len(list((seed / "predictions").glob("*.png")))
    board = json.loads(next(leaderboards.glob("segmentation--*.json")).read_text())
    entry = next(e for e in board["entries"] if e["name"].startswith(f"gradcam+{validation['refine']}/"))
    assert 0 < entry["metrics"]["pxap"] <= 1 and entry["metrics"]["miou"] >= 0
    shutil.rmtree(out)
