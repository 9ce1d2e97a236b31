"""``minbench run`` checks the whole run before anything slow: every recipe key and flag,
one line per mistake, exit 2, no dataset generated, no framework imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minbench.cli import main
from minbench.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"not used: refused before it is read")
    return path


@pytest.mark.parametrize("args, names", [
    (["--task", "segmentation", "--set", "trainer.max_epochs=abc"], "--set trainer.max_epochs=abc"),
    (["--task", "fewshot-10", "--set", "model.init_args.no_such_key=1"], "--set model.init_args.no_such_key=1"),
    (["--task", "segmentation", "--set", "model.init_args.no_such_key=1"], "--set model.init_args.no_such_key=1"),
    (["--task", "size", "--weights", "{weights}"], "--weights"),
    (["--task", "segmentation", "--cam", "gradcamm"], "--cam gradcamm"),
    (["--task", "segmentation", "--cam-target", "best"], "--cam-target best"),
    (["--task", "segmentation", "--threshold", "fixed", "--threshold-value", "3"], "--threshold-value 3"),
    (["--task", "fewshot-10", "--set", "data.init_args.limit=48"], "--set data.init_args.limit=48"),
    (["--task", "fewshot-10", "--set", "data.init_args.batch_size=big"], "--set data.init_args.batch_size=big"),
    (["--task", "fewshot-10", "--set", "trainer.precision=15"], "--set trainer.precision=15"),
    (["--task", "fewshot-10", "--set", "trainer.logger=false"], "--logger"),
    (["--task", "fewshot-10", "--cam", "gradcam"], "--cam"),
    (["--task", "fewshot-10", "--max-epochs", "abc"], "--max-epochs"),
    (["--task", "fewshot-10", "--set", "model.init_args.backbone=resnet_nope"],
     "--set model.init_args.backbone=resnet_nope: backbone 'resnet_nope' is not a timm model"),
    (["--task", "zeroshot", "--set", "model.init_args.backbone=resnet_nope"],
     "--set model.init_args.backbone=resnet_nope: backbone 'resnet_nope' is not a timm model"),
    (["--task", "fewshot-10", "--set", "role=baseline"],
     "--set role=baseline: 'baseline' is not one of method, reference"),
])
def test_mistakes_are_one_line_exit_2_before_any_data(args, names, weights, tmp_path, capsys):
    home = Path(os.environ["MINBENCH_HOME"])
    args = [a.replace("{weights}", str(weights)) for a in args]
    with pytest.raises(SystemExit) if "abc" in args and "--max-epochs" in args else _no_raise() as caught:
        code = main(["run", *args, "--out", str(tmp_path / "run")])
    code = caught.value.code if caught is not None and hasattr(caught, "value") else code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert names in err
    assert not (home / "datasets").exists() and not (home / "images").exists()
    assert not (tmp_path / "run").exists()


class _no_raise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_several_mistakes_give_one_line_each(tmp_path, capsys):
    code = main(["run", "--task", "fewshot-10", "--set", "trainer.max_epochs=abc", "--set", "model.init_args.lr=x",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("minbench: error: --set ") for line in lines)


def test_recipe_keys_are_named_by_file(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((REPO / "baselines" / "fewshot-small-cnn.yaml").read_text().replace("lr: 0.004", "lr: fast"))
    assert main(["run", "--config", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}: model.init_args.lr" in err and "takes float" in err


def test_the_check_imports_no_deep_learning_framework(tmp_path):
    code = ("import sys\nfrom minbench.cli import main\n"
            "rc = main(['run', '--task', 'segmentation', '--set', 'trainer.max_epochs=abc'])\n"
            "assert rc == 2, rc\n"
            "heavy = [m for m in ('torch', 'lightning', 'timm', 'torchvision') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "benchmark"), "MINBENCH_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "home").exists()


def _args(**kw):
    from minbench.pipelines.resolve import RunRequest

    return RunRequest(**{"task": "fewshot-10", **kw})


def test_weights_for_segmentation_go_to_the_default_classifier(weights):
    from minbench.pipelines.resolve import resolve_config

    config, _ = resolve_config(_args(task="segmentation", weights=weights))
    assert config["classifier_weights"] == str(weights.resolve())
    assert "weights" not in config["model"]["init_args"]
    with pytest.raises(UserError, match="--weights"):
        resolve_config(_args(task="segmentation", weights=weights, classifier=weights))


def test_resume_reapplies_hardware_and_refuses_other_changes():
    from minbench.pipelines.resolve import resolve_config, resume_overrides

    stored, _ = resolve_config(_args(overrides=["model.init_args.lr=0.01"]))
    again = resume_overrides(stored, _args(devices="2", strategy="ddp", logger="wandb", max_epochs=5,
                                           overrides=["model.init_args.lr=0.01"]))
    assert again["trainer"]["devices"] == 2 and again["trainer"]["strategy"] == "ddp"
    assert again["logger"] == "wandb" and again["trainer"]["max_epochs"] == 5
    with pytest.raises(UserError) as err:
        resume_overrides(stored, _args(overrides=["model.init_args.lr=0.5", "data.init_args.image_size=96"],
                                       seed=3))
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert any("--set model.init_args.lr=0.5" in line and "0.01" in line for line in lines)
    assert any("--set data.init_args.image_size=96" in line for line in lines)
    assert any("--seed 3" in line for line in lines)


@pytest.mark.parametrize("annotation, value, expected", [
    ("Optional[int]", "abc", False), ("Optional[int]", None, True), ("int", True, False),
    ("float", 3, True), ("str | None", 1, False), ("list[int]", [1, 2], True), ("list[int]", [1, "a"], False),
    ("tuple[float, float]", [0.1, 1.0], True), ("tuple[float, float]", [0.1], False),
    ("Literal['a', 'b']", "c", False), ("Union[bool, Literal['warn']]", "warn", True),
    ("SomethingUnknown", 3, None), ("dict[str, Any] | None", {"a": 1}, True),
])
def test_values_are_checked_against_annotations(annotation, value, expected):
    import ast

    from minbench.pipelines.signatures import matches

    assert matches(value, ast.parse(annotation, mode="eval").body, "minbench.pipelines.signatures") is expected


def test_static_signatures_agree_with_the_imported_classes():
    import inspect

    from minbench.recipes import import_class
    from minbench.pipelines.signatures import signature

    for path in ("lightning.pytorch.Trainer", "minbench.data.datamodule.MineralDataModule",
                 "minbench.data.augment.AugmentConfig"):
        params, _ = signature(path)
        cls = import_class(path, "test")
        real = [n for n, p in inspect.signature(cls).parameters.items()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        assert [p.name for p in params if p.kind in ("positional", "keyword")] == real


def test_every_shipped_recipe_passes_the_check():
    from minbench.recipes import shipped_recipes
    from minbench.pipelines.resolve import resolve_config

    for name in shipped_recipes():
        if name == "clip-vit-b32":  # its preflight wants local weights: no hub here
            with pytest.raises(UserError, match="--weights"):
                resolve_config(_args(task=None, config=name))
            continue
        config, card = resolve_config(_args(task=None, config=name))
        assert config["name"] and card.id == config["task"]
