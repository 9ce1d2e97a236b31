"""The embedded dataset's classes: species, not colour varieties; clean zero-shot; sizes; realism."""

from __future__ import annotations

import numpy as np
import pytest
from minbench.data.synth.colors import delta_e
from minbench.data.synth.meshes import load_mesh
from minbench.data.synth.scene import achromatic, sample_scene
from minbench.data.synth.species import all_classes, load_species
from minbench.data.synth.splits import SIZES, make_plan


@pytest.fixture(scope="module")
def classes():
    return all_classes()


def test_siblings_differ_in_form_never_in_colour_alone(classes):
    by_species: dict[str, list] = {}
    for c in classes:
        by_species.setdefault(c.family.id, []).append(c)
    for sp, members in by_species.items():
        assert sum(not c.variety for c in members) == 1, sp     # one species class, named as the species
        forms = [f for c in members for f in c.forms]
        assert len(forms) == len(set(forms)), f"{sp}: two classes share a form"
        for c in members:
            assert set(c.colours) <= set(c.family.colours)
            assert len(c.forms) == (2 if not c.variety else 1)


def test_no_single_cue_identifies_a_class(classes):
    """Every lustre, colour and non-crystalline form is shared by other species; habits too, but
    for a few named twins and habits the database gives one species (dogtooth calcite,
    swallowtail gypsum, sceptred quartz: recognisable by habit in a museum too)."""
    species = load_species()
    own_habit = []
    for c in classes:
        others = [s for s in species if s.id != c.family.id]
        assert any(s.lustre == c.family.lustre for s in others), c.label
        for colour in c.colours:   # within 25 CIE76 units: less than one colour's spread between specimens
            assert any(delta_e(colour.rgb, o.rgb) < 25 for s in others for o in s.colours), (c.label, colour.name)
        for form in c.forms:
            if form.crystalline:
                words = load_mesh(form.habit).habit
                if not any(load_mesh(h).habit == words for s in others for h in s.habits):
                    own_habit.append(c.label)
            else:
                assert sum(form.kind in s.non_crystalline for s in others) >= 2, (c.label, form.kind)
    assert len(set(own_habit)) <= 0.10 * len(classes), sorted(set(own_habit))


@pytest.mark.parametrize("size, seed", [("small", 0), ("small", 1), ("benchmark", 0), ("benchmark", 2)])
def test_unseen_classes_share_no_species_mesh_or_form_set_with_trained_ones(classes, size, seed):
    plan = make_plan(classes, SIZES[size], seed)
    trained = {classes[i].family.id for i in plan.fewshot_classes[2]}
    unseen = {classes[i].family.id for i in plan.zeroshot_classes}
    assert not trained & unseen
    species = {s.id: s for s in load_species()}
    meshes = {h.digest for f in trained for h in species[f].habits}
    form_sets = {h.cdl_forms for f in trained for h in species[f].habits if h.cdl_forms}
    for f in unseen:
        for h in species[f].habits:
            assert h.digest not in meshes and h.cdl_forms not in form_sets, (f, h.slug)
    # Nor as a satellite in a training photo.
    for row in plan.rows:
        if any(row.fewshot) and row.satellite is not None:
            assert classes[row.satellite].family.id not in unseen
    counts = np.bincount([r.cls for r in plan.rows if r.zeroshot])
    counts = counts[counts > 0]
    assert len(counts) >= SIZES[size].zeroshot_classes and counts.min() == 1 and counts.max() >= 5


def test_benchmark_size_has_test_splits_that_can_rank_methods(classes):
    plan = make_plan(classes, SIZES["benchmark"], 0)
    test = [sum(r.fewshot[k] == "test" for r in plan.rows) for k in range(3)]
    assert test[0] >= 500 and test[1] >= 1000 and test[2] >= 1000
    assert len(plan.zeroshot_classes) >= 100
    assert sum(r.segmentation for r in plan.rows) >= 150 and sum(r.size for r in plan.rows) >= 1000
    assert all(classes[i].variety == "" for i in plan.fewshot_classes[0])   # the commonest classes are species


def test_specimens_are_achromatic_and_metallic_at_museum_rates(classes):
    """At least a quarter achromatic and a tenth metallic or submetallic, over 600 planned photos."""
    plan = make_plan(classes, SIZES["small"], 0)
    achro, metal = [], []
    for row in plan.rows[:600]:
        scene = sample_scene(classes[row.cls], np.random.default_rng([0, row.index]), width=256, height=192,
                             satellite=None)
        own = next(c for c in scene.crystals if not c.satellite)
        achro.append(achromatic(own.rgb * 255))
        metal.append(own.lustre in ("metallic", "submetallic"))
    assert np.mean(achro) >= 0.25 and np.mean(metal) >= 0.10
