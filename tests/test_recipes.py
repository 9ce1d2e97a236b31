"""Every shipped recipe loads, and every key it sets is an argument its target takes.

The check is the one `minbench run` makes before anything slow (``validate_run``): the
guard and the run can never disagree about what a recipe may say.
"""

from __future__ import annotations

import pytest

from minbench.cards import all_cards, get_card
from minbench.errors import UserError
from minbench.recipes import load_recipe, shipped_recipes
from minbench.pipelines.validate import validate_run

RECIPES = shipped_recipes()


def check(path) -> None:
    """``validate_run`` on a recipe as `minbench run` resolves it (seeds and logger set);
    without the kind's preflight, which asks for local weights, not for valid keys."""
    recipe = load_recipe(path)
    recipe.setdefault("seeds", [0])
    recipe.setdefault("logger", "csv")
    validate_run(recipe, get_card(recipe["task"]))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_key_is_an_argument_of_its_target(name):
    check(RECIPES[name])


def test_the_check_catches_a_misspelt_key(tmp_path):
    import yaml

    raw = yaml.safe_load(RECIPES["fewshot-small-cnn"].read_text())
    raw["model"]["init_args"]["backbon"] = "resnet18"
    raw["data"]["init_args"]["augment_config"] = {"class_path": "minbench.data.augment.AugmentConfig",
                                                  "init_args": {"greyscale": 0.0}}
    raw["trainer"]["max_epoch"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as err:
        check(path)
    lines = str(err.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "model.init_args.backbon", "data.init_args.augment_config.init_args.greyscale", "trainer.max_epoch"]
    assert "did you mean 'backbone'" in lines[0] and "did you mean 'grayscale'" in lines[1]


def test_every_task_kind_has_its_default_recipe_shipped():
    from minbench.pipelines.kinds import default_recipe, pipeline

    for kind in sorted({c.kind for c in all_cards().values()}):
        pipeline(kind)  # every kind has a pipeline (registered by its module)
        default = default_recipe(kind)
        assert default in RECIPES, f"{kind}: baselines/{default}.yaml is missing"
        assert get_card(load_recipe(RECIPES[default])["task"]).kind == kind
