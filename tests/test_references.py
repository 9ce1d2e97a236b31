"""The reference rows of the four cues (issue 23): one backdrop model, shared; each method on
a hand-made image whose answer is known; each shipped reference recipe end to end on the
tiny data, recorded as a reference row on its board; the size reference's calibration rows
(public by the size card) and its refusal of a dataset without any."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from minbench.cli import main
from minbench.data import manifest
from minbench.models import saliency_baselines as sb

#: the shipped reference recipe of each cue -> its task
REFERENCES = {"colour-logistic": "fewshot-10", "zeroshot-colour-words": "zeroshot", "size-extent": "size"}


def photo(h: int = 120, w: int = 160, discs=(((60, 80), 30, (200, 40, 40)),), seed: int = 0) -> np.ndarray:
    """A grey gradient backdrop with noise and coloured discs ``((cy, cx), radius, rgb)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.repeat((100 + 50 * yy / h)[..., None], 3, axis=2) + rng.normal(0, 3, (h, w, 3))
    for (cy, cx), r, rgb in discs:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rgb
    return np.clip(img, 0, 255).astype(np.uint8)


def iou(a, b) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


# --------------------------------------------------------------------------- the backdrop model
def test_the_non_backdrop_mask_finds_the_specimen_and_nothing_on_a_flat_photo():
    yy, xx = np.mgrid[0:120, 0:160]
    mask = sb.non_backdrop_mask(photo())
    assert mask.shape == (120, 160) and iou(mask, (yy - 60) ** 2 + (xx - 80) ** 2 <= 900) > 0.9
    assert not sb.non_backdrop_mask(np.full((50, 70, 3), 90, np.uint8)).any()


def test_blob_keeps_the_bigger_of_two_blobs_with_its_holes_filled():
    mask = np.zeros((40, 60), bool)
    mask[5:25, 5:25] = True
    mask[10:15, 10:15] = False  # a hole
    mask[30:36, 40:50] = True   # the smaller blob
    ring = mask[5:25, 5:25].copy()
    blob = sb.largest_blob(mask)
    expected = np.zeros_like(mask)
    expected[5:25, 5:25] = True
    assert np.array_equal(blob, expected)
    assert np.array_equal(sb.largest_blob(mask, fill_holes=False)[5:25, 5:25], ring)
    assert not sb.largest_blob(np.zeros((4, 4), bool)).any()
    # on a photo: a big disc with a backdrop-grey spot inside, and a small disc
    img = photo(discs=(((60, 60), 35, (40, 160, 60)), ((20, 140), 10, (40, 160, 60))))
    img[55:65, 55:65] = img[2, 2]
    _, mask = sb.run_baseline("blob", img)
    assert mask[60, 60] and not mask[20, 140] and mask[60, 30]


# --------------------------------------------------------------------------- few-shot: colour statistics
def test_colour_statistics_describe_the_specimen_not_the_backdrop():
    from minbench.data.augment import eval_transform
    from minbench.models.colour_features import ColourStats

    # the same specimen framed large and small: the same colours off the backdrop
    large, small = (photo(discs=(((60, 80), r, (200, 120, 30)),)) for r in (45, 15))

    def similarity(**kwargs) -> float:
        feats = torch.nn.functional.normalize(
            ColourStats(**kwargs)(eval_transform(torch.from_numpy(np.stack([large, small])))), dim=1)
        return float(feats[0] @ feats[1])

    assert similarity() > 0.98 and 1 - similarity(exclude_backdrop=False) > 10 * (1 - similarity())


def test_the_logistic_head_fits_a_linear_rule_deterministically():
    from minbench.models.feature_baselines import LogisticHead

    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 5.0], [6.0, 0.0, 5.0], [0.0, 6.0, 5.0]]) * 10  # any scale: standardised
    labels = torch.arange(3).repeat_interleave(20)
    feats = centres[labels] + torch.randn(60, 3, generator=gen)
    head, again = LogisticHead(3), LogisticHead(3)
    head.fit(feats, labels)
    again.fit(feats, labels)
    probs = head(feats)
    assert torch.equal(probs, again(feats)) and torch.allclose(probs.sum(1), torch.ones(60))
    assert (probs.argmax(1) == labels).all()
    loaded = LogisticHead(3)
    loaded.load_state_dict(head.state_dict())
    assert loaded.fitted and torch.equal(loaded(feats), probs)
    with pytest.raises(ValueError, match="l2"):
        LogisticHead(3, l2=0.0)


# --------------------------------------------------------------------------- zero-shot: colour words
def test_colour_words_are_read_from_the_class_text():
    from minbench.data.synth.colors import BASE
    from minbench.models.colour_words import text_colours

    assert text_colours("malachite: green, dark green; vitreous lustre; monoclinic crystal system") == [
        BASE["green"], tuple(round(v * 0.6) for v in BASE["green"])]
    assert text_colours("quartz: vitreous to resinous lustre; trigonal crystal system; occurs as massive") == []
    assert text_colours("smoky quartz") == [BASE["smoky"]]  # a name's colour word counts


def test_colour_words_rank_a_red_class_first_for_a_red_photo():
    from minbench.models.colour_features import to_srgb
    from minbench.models.colour_words import photo_colours, rank_by_colour, srgb255_to_lab, text_colours
    from minbench.data.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform

    texts = {"zircon": "zircon: blue; adamantine lustre", "beryl": "beryl: green, bluish-green",
             "rutile": "rutile: red, crimson; adamantine lustre", "apatite": "apatite: vitreous lustre",
             "azurite": "azurite: blue"}
    names = sorted(texts)
    colours = [srgb255_to_lab(text_colours(texts[n])) for n in names]
    images = eval_transform(torch.from_numpy(np.stack([photo(discs=(((60, 80), 35, rgb),))
                                                       for rgb in ((178, 32, 38), (42, 82, 188))])))
    distance, order = rank_by_colour(photo_colours(to_srgb(images, IMAGENET_MEAN, IMAGENET_STD)), colours, names)
    ranked = [[names[k] for k in row] for row in order]
    assert ranked[0][0] == "rutile" and distance[0].min() < 10  # the photo's red is the word's red
    assert ranked[1][:2] == ["azurite", "zircon"]  # the same blue: a tie, broken by name
    assert ranked[0][-1] == ranked[1][-1] == "apatite" and math.isinf(distance[0, names.index("apatite")])


# --------------------------------------------------------------------------- size: pixel extent
def test_the_extent_fit_recovers_a_power_law_and_the_extent_is_the_blob_in_the_frame():
    from minbench.models.size.extent import blob_extent, fit_power_law

    extents = np.array([0.1, 0.2, 0.35, 0.5, 0.8, np.nan])
    law = fit_power_law(extents, 3.0 * extents ** 0.7)
    assert law.slope == pytest.approx(0.7) and law.intercept == pytest.approx(math.log(3.0))
    assert law.n == 5 and law.rmse_log == pytest.approx(0, abs=1e-9) and law(0.4) == pytest.approx(3 * 0.4 ** 0.7)
    assert math.isnan(law(0.0))
    with pytest.raises(ValueError, match="two"):
        fit_power_law([0.3, 0.3], [2.0, 3.0])
    img = photo(discs=())
    img[30:70, 20:100] = (40, 60, 200)  # the specimen: 80 px wide
    img[100:110, 140:150] = (230, 230, 230)  # a small cube: another blob
    extent, box = blob_extent(img)
    assert extent == pytest.approx(80 / 160, abs=3 / 160) and box[0] == pytest.approx(20, abs=2)
    assert math.isnan(blob_extent(np.full((40, 40, 3), 120, np.uint8))[0])


def _without_calibration(src: Path, dst: Path) -> Path:
    """``src`` with no size recorded outside the size test split (as the real release)."""
    from minbench.cards import get_card

    frame, info = manifest.read_manifest(src), manifest.read_info(src)
    dst.mkdir()
    for entry in src.iterdir():
        if entry.is_dir():
            (dst / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    frame.loc[frame.index[get_card("size").calibration_positions(frame)], "size_cm"] = np.nan
    manifest.write_dataset(dst, frame, name=info.name, version=info.version, source=info.source, extra=info.extra)
    return dst


def test_the_size_card_makes_the_calibration_sizes_public(tiny_dataset):
    from minbench.cards import get_card
    from minbench.data.datamodule import MineralDataModule
    from minbench.scoring.floors import median_size

    full = manifest.read_manifest(tiny_dataset)
    card = get_card("size")
    calibration, test = card.calibration_positions(full), card.positions(full, "test")
    assert len(calibration) and not np.intersect1d(calibration, test).size
    assert len(calibration) + len(test) == len(full)
    for task, public in (("size", True), ("segmentation", False)):
        dm = MineralDataModule(tiny_dataset, task=task, image_size=None, num_workers=0)
        dm.setup("predict")
        sizes = dm.task_context().frame["size_cm"].to_numpy()
        assert np.isnan(sizes[test]).all() if task == "size" else True
        assert np.array_equal(sizes[calibration], full["size_cm"].to_numpy()[calibration]) is public
    assert median_size(card, full) == (float(np.median(full["size_cm"].to_numpy()[calibration])), len(calibration))


def test_the_size_reference_refuses_a_dataset_without_calibration_rows(tiny_dataset, tmp_path, capsys):
    data = _without_calibration(tiny_dataset, tmp_path / "no-calibration")
    out = tmp_path / "run"
    rc = main(["run", "--config", "size-extent", "--data", str(data), "--out", str(out), "--quiet",
               "--no-leaderboard"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "calibration photos" in err and "has none" in err
    assert not out.exists()


# --------------------------------------------------------------------------- the recipes, end to end
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_reference_recipe_runs_as_shipped_and_is_a_reference_row(name, tiny_dataset, tmp_path,
                                                                      leaderboards, capsys):
    from minbench.pipelines.run_folder import RunFolder
    from minbench.recipes import shipped_recipes
    from minbench.scoring import leaderboard, render

    recipe = shipped_recipes()[name]
    assert recipe.parent.name == "baselines"
    out = tmp_path / "run"
    assert main(["run", "--config", str(recipe), "--data", str(tiny_dataset), "--out", str(out), "--quiet"]) == 0
    status = RunFolder(out).seed_status(0)
    assert status["state"] == "finished"
    ((path, board),) = leaderboard.load_boards([leaderboards])
    (entry,) = board["entries"]
    assert board["task"] == REFERENCES[name]
    assert (entry["name"], entry["role"], entry["modified"]) == (name, "reference", [])
    headline = board["headline"]
    assert entry["samples"] and entry["metrics"][headline] == status["metrics"][headline]
    capsys.readouterr()
    assert main(["leaderboard", "--task", REFERENCES[name], "--dir", str(leaderboards)]) == 0
    assert f"(ref) {name}" in capsys.readouterr().out
    assert render.board_view(path, board).rows[0].group == "1"  # a real rank group, from its per-sample file
