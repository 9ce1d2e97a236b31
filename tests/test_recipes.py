"""Every shipped recipe loads, and every key it sets is an argument its target takes."""

from __future__ import annotations

import inspect

import pytest

from minbench.cards import all_cards, get_card
from minbench.pipelines.config import import_class, load_recipe, shipped_recipes

RECIPES = shipped_recipes()


def _arguments(cls) -> set[str]:
    """The keyword arguments ``cls(...)`` accepts: its ``__init__``'s, and its bases' where
    an ``__init__`` passes ``**kwargs`` on."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return names
    raise AssertionError(f"{cls.__name__} takes **kwargs all the way down: its recipe keys cannot be checked")


def unknown_keys(section: dict, where: str) -> list[str]:
    """``where.init_args.KEY`` for each key the section's class does not take (nested
    ``class_path`` values checked too)."""
    cls = import_class(section["class_path"], where)
    names = _arguments(cls)
    bad = []
    for key, value in (section.get("init_args") or {}).items():
        if key not in names:
            bad.append(f"{where}.init_args.{key} ({cls.__name__} takes {', '.join(sorted(names))})")
        elif isinstance(value, dict) and isinstance(value.get("class_path"), str):
            bad += unknown_keys(value, f"{where}.init_args.{key}")
    return bad


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_key_is_an_argument_of_its_target(name):
    from lightning.pytorch import Trainer

    recipe = load_recipe(RECIPES[name])
    get_card(recipe["task"])  # names a task that exists
    bad = unknown_keys(recipe["model"], f"{name}: model") + unknown_keys(recipe["data"], f"{name}: data")
    trainer_args = _arguments(Trainer)
    bad += [f"{name}: trainer.{k} (not a lightning Trainer argument)" for k in recipe["trainer"]
            if k not in trainer_args]
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_misspelt_key(tmp_path):
    import yaml

    raw = yaml.safe_load(RECIPES["fewshot-small-cnn"].read_text())
    raw["model"]["init_args"]["backbon"] = "resnet18"
    raw["data"]["init_args"]["augment_config"] = {"class_path": "minbench.data.augment.AugmentConfig",
                                                  "init_args": {"greyscale": 0.0}}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(path)
    assert [b.split(" (")[0] for b in unknown_keys(recipe["model"], "m") + unknown_keys(recipe["data"], "d")] == [
        "m.init_args.backbon", "d.init_args.augment_config.init_args.greyscale"]


def test_every_task_kind_has_its_default_recipe_shipped():
    from minbench.pipelines.runner import kind_module

    for kind in sorted({c.kind for c in all_cards().values()}):
        default = kind_module(kind).DEFAULT_RECIPE
        assert default in RECIPES, f"{kind}: baselines/{default}.yaml is missing"
        assert get_card(load_recipe(RECIPES[default])["task"]).kind == kind
