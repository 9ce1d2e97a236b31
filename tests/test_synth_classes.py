"""The embedded dataset's classes (generator 3): species from the curated table, clean
zero-shot at species level, no class cue in the scene, museum frequencies."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from minbench.data.synth.colors import srgb_to_lab
from minbench.data.synth.meshes import load_mesh
from minbench.data.synth.scene import achromatic, sample_scene
from minbench.data.synth.species import all_classes, load_species
from minbench.data.synth.splits import SIZES, make_plan


@pytest.fixture(scope="module")
def classes():
    return all_classes()


@pytest.fixture(scope="module")
def small_scenes(classes):
    """The fewshot-98 rows of the small plan with each photo's drawn scene (no pixels)."""
    plan = make_plan(classes, SIZES["small"], 0)
    rows = [r for r in plan.rows if r.fewshot[1]]
    scenes = [sample_scene(classes[r.cls], np.random.default_rng([0, r.index]), width=256, height=192,
                           satellite=None) for r in rows]
    return rows, scenes


def test_every_class_is_a_species_of_a_table_of_at_least_450(classes):
    assert len(load_species()) >= 450
    assert all(c.variety == "" and c.label == c.family.species for c in classes)
    assert len({c.label for c in classes}) == len(classes)


def test_no_single_cue_identifies_a_class(classes):
    """Every lustre, colour and parametric habit of a species is shared by other species (real
    species share them: many cubic, many green, many metallic grey); the database's own meshes
    (twins, sceptres) are the only habits one species may own."""
    species = load_species()
    owner = np.array([i for i, sp in enumerate(species) for _ in sp.colours])
    lab = srgb_to_lab(np.array([c.rgb for sp in species for c in sp.colours], dtype=np.float64))
    near = np.linalg.norm(lab[:, None] - lab[None], axis=-1) < 25   # less than one colour's spread between specimens
    for i, sp in enumerate(species):
        others = [s for s in species if s.id != sp.id]
        assert sum(s.lustre == sp.lustre for s in others) >= 3, sp.id
        for k in np.flatnonzero(owner == i):
            assert len(set(owner[near[k]]) - {i}) >= 2, (sp.id, sp.colours[k - np.flatnonzero(owner == i)[0]].name)
        for h in sp.habits:
            if h.words:
                assert sum(any(g.words == h.words for g in s.habits) for s in others) >= 3, (sp.id, h.words)


def test_mineralogy_spot_checks():
    """A few facts any mineralogist would check (the issue's examples of what 2.0 got wrong)."""
    by = {s.species: s for s in load_species()}
    assert by["pyrite"].lustre == "metallic" and "brass" in by["pyrite"].colours[0].name
    assert "fibrous" not in by["magnetite"].non_crystalline
    assert not any(c.colourless for c in by["cassiterite"].colours)
    assert {"colourless", "purple"} <= {w for c in by["quartz"].colours for w in c.name.split()}
    assert by["quartz"].commonness == 5 and by["calcite"].commonness == 5 and by["taaffeite"].commonness == 1
    assert load_mesh(by["galena"].habits[0]).habit == "cubic"


@pytest.mark.parametrize("size, seed", [("small", 0), ("small", 1), ("benchmark", 0), ("benchmark", 2)])
def test_unseen_species_are_never_trained_on_nor_seen(classes, size, seed):
    cfg = SIZES[size]
    plan = make_plan(classes, cfg, seed)
    trained = {classes[i].family.id for i in plan.fewshot_classes[2]}
    unseen = {classes[i].family.id for i in plan.zeroshot_classes}
    assert len(unseen) == cfg.zeroshot_species and not trained & unseen
    assert not {classes[i].label for i in plan.zeroshot_classes} & {classes[i].label for i in plan.fewshot_classes[2]}
    for row in plan.rows:   # nor as a satellite in a training photo
        if any(row.fewshot) and row.satellite is not None:
            assert classes[row.satellite].family.id not in unseen
    counts = Counter(r.cls for r in plan.rows if r.zeroshot)
    assert len(counts) == cfg.zeroshot_species and min(counts.values()) >= cfg.zeroshot_min


def test_benchmark_size_has_test_splits_that_can_rank_methods(classes):
    plan = make_plan(classes, SIZES["benchmark"], 0)
    test = [sum(r.fewshot[k] == "test" for r in plan.rows) for k in range(3)]
    assert test[0] >= 500 and test[1] >= 1000 and test[2] >= 1000
    zs = Counter(r.cls for r in plan.rows if r.zeroshot)
    assert len(zs) >= 50 and min(zs.values()) >= 10 and sum(zs.values()) >= 1000
    assert sum(r.segmentation for r in plan.rows) >= 150 and sum(r.size for r in plan.rows) >= 1000


def test_common_species_are_common(classes):
    """The commonest classes are species a museum holds many of (commonness 4-5 of 5)."""
    plan = make_plan(classes, SIZES["benchmark"], 0)
    top = [classes[i].family.commonness for i in plan.fewshot_classes[0]]
    assert np.mean(top) >= 4.0, top


def _lookup_accuracy(values: list[str], labels: list[int], train: np.ndarray) -> tuple[float, float]:
    """Test accuracy of the best classifier of one categorical feature (each value's commonest
    training class) and of the training prior (the commonest training class)."""
    values, labels = np.asarray(values), np.asarray(labels)
    prior = Counter(labels[train]).most_common(1)[0][0]
    best = {v: Counter(labels[train & (values == v)]).most_common(1)[0][0] for v in set(values[train])}
    test = ~train
    pred = np.array([best.get(v, prior) for v in values[test]])
    return float(np.mean(pred == labels[test])), float(np.mean(labels[test] == prior))


@pytest.mark.parametrize("cue", ["rock", "collection", "background", "illuminant"])
def test_the_scene_alone_predicts_no_better_than_the_prior(small_scenes, cue):
    """The matrix rock type (or the collection, backdrop, light) alone predicts fewshot-98 no
    better than its training prior + 3 points."""
    rows, scenes = small_scenes
    train = np.array([r.fewshot[1] == "train" for r in rows])
    acc, prior = _lookup_accuracy([getattr(s, cue) for s in scenes], [r.cls for r in rows], train)
    assert acc <= prior + 0.03, (cue, acc, prior)


def test_specimens_are_achromatic_and_metallic_at_museum_rates(classes, small_scenes):
    """At least a fifth achromatic and a tenth metallic or submetallic."""
    _, scenes = small_scenes
    own = [next(c for c in s.crystals if not c.satellite) for s in scenes]
    assert np.mean([achromatic(c.rgb * 255) for c in own]) >= 0.2
    assert np.mean([c.lustre in ("metallic", "submetallic") for c in own]) >= 0.10
