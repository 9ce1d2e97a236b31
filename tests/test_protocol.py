"""The sealed protocol (issue 22): no shipped recipe's predictions depend on a test row's truth.

Every shipped recipe runs (``minbench run``, tiny settings; the large-backbone classifiers and
the CAM methods beside the default at their task class and data path, see ``WHOLE``) on the
tiny embedded dataset and
on a copy whose test rows of the recipe's task have every truth column garbled
(``card.truth_columns``: species shuffled among the test rows, texts rewritten, boxes
shifted, sizes and scales scaled, mask files inverted and moved); the submissions must be
byte-identical. The few-shot recipes run on ``fewshot-10`` only: the three few-shot tasks
differ in their split column alone (one card kind, one pipeline, one data path). A leaking
double (a classifier that ranks each test photo's true species first, read from
``context.frame``) shows the test can fail: on the code before the data module sealed its
rows its submissions follow the garbled species. And the columns a method can reach of a
test row (``dm.test_frame``, ``TaskContext``, a test batch) are checked against the card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from minbench.cards import get_card, task_ids
from minbench.cli import main
from minbench.data import manifest
from minbench.recipes import shipped_recipes
from minbench.trainers.classification import ClassificationTask

TINY_CNN = "{backbone: resnet10t, pretrained: false, model_kwargs: {channels: [8, 8, 16, 16], stem_width: 8}}"
#: what a batch may carry beside the card's public test columns: the pixels, the row's
#: position and the photo's own size
BATCH_KEYS = {"image", "index", "sample_id", "orig_size"}


# --------------------------------------------------------------------------- the garbled copy
def _garble_json(value):
    if isinstance(value, list):
        return [_garble_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _garble_json(v) for k, v in value.items()}
    return value + 1.5 if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _garble_text(column: str, text: str) -> str:
    if text.startswith(("[", "{")):  # boxes and detector outputs: every coordinate shifted
        try:
            return json.dumps(_garble_json(json.loads(text)))
        except ValueError:
            pass
    return f"garbled {column}: {text[::-1]}"


def _species_shuffle(frame, card, test) -> np.ndarray:
    """The test rows' species rolled among them; for a card with a validation part (a
    function of the whole manifest's species, as the zero-shot train split is of the test
    species) the first roll that keeps that part, so the rows a method sees are the same."""
    species = frame["species"].to_numpy()
    validation = card.positions(frame, "validation")
    for shift in range(1, len(test)):
        values = species.copy()
        values[test] = np.roll(species[test], shift)
        trial = frame.assign(species=values)
        if (values[test] != species[test]).any() and np.array_equal(card.positions(trial, "validation"), validation):
            return values[test]
    raise AssertionError(f"{card.id}: no roll of the test species keeps the validation part")


def garbled_copy(src: Path, dst: Path, task: str) -> Path:
    """``src`` with every truth column of ``task``'s test rows garbled (photos linked)."""
    frame = manifest.read_manifest(src)
    info = manifest.read_info(src)
    card = get_card(task)
    test = card.positions(frame, "test")
    dst.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.is_dir():
            (dst / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    out = frame.copy()
    for column in card.truth_columns(frame.columns):
        values = out[column].to_numpy().copy()
        if column == "species":  # a shuffle among the test rows keeps the set of classes
            values[test] = _species_shuffle(frame, card, test)
        elif column == "mask_path":  # another file, of the inverted mask
            for p in test:
                if values[p]:
                    mask = np.asarray(Image.open(src / values[p]).convert("L"))
                    values[p] = f"garbled_masks/{Path(values[p]).name}"
                    (dst / values[p]).parent.mkdir(exist_ok=True)
                    Image.fromarray(255 - mask).save(dst / values[p])
        elif pd.api.types.is_bool_dtype(out[column]):
            values[test] = ~values[test]
        elif pd.api.types.is_numeric_dtype(out[column]):
            values[test] = values[test] * 1.5
        else:
            values[test] = [_garble_text(column, str(v)) if v else "" for v in values[test]]
        out[column] = values
        kept = (out[column].iloc[test].astype(str) == frame[column].iloc[test].astype(str)).all()
        assert not kept or frame[column].iloc[test].astype(str).nunique() <= 1 or column == "species", column
    assert (out["species"].iloc[test] != frame["species"].iloc[test]).any()
    manifest.write_dataset(dst, out, name=info.name, version=info.version, source=info.source, extra=info.extra)
    return dst


@pytest.fixture(scope="session")
def garbled(tiny_dataset, tmp_path_factory):
    """task -> the tiny dataset with that task's test rows garbled (made once per task)."""
    made: dict[str, Path] = {}

    def of(task: str) -> Path:
        if task not in made:
            made[task] = garbled_copy(tiny_dataset, tmp_path_factory.mktemp("garbled") / task, task)
        return made[task]

    return of


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory):
    """A tiny classifier checkpoint the CAM recipes explain (both runs the same one)."""
    from test_segmentation_pipeline import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("classifier") / "tiny.ckpt")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny open_clip architecture and its random weights, as a local weights file."""
    from minbench.models.clip import load_clip
    from test_clip import TINY

    folder = tmp_path_factory.mktemp("clip")
    arch = folder / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    torch.manual_seed(0)
    torch.save(load_clip(str(arch), allow_random=True).model.state_dict(), folder / "tiny-clip.pt")
    return arch, folder / "tiny-clip.pt"


# --------------------------------------------------------------------------- the runs
def tiny_settings(name: str, config: dict, classifier: Path, clip) -> list[str]:
    """``minbench run`` arguments that make the recipe ``name`` cheap, keeping its model class
    and data path: a tiny network, 32 px, one epoch, full precision, no worker processes."""
    model = config["model"]["class_path"].rpartition(".")[2]
    args = ["--max-epochs", "1", "--set", "data.init_args.num_workers=0"]
    if config.get("trainer", {}).get("precision") == "16-mixed":  # a GPU's setting; bf16 emulation on a CPU is slow
        args += ["--set", "trainer.precision=32-true"]
    if get_card(config["task"]).kind != "size":  # the size methods measure native-resolution photos
        args += ["--set", "data.init_args.image_size=32"]
    if model in ("ClassificationTask", "FeatureBaselineTask") and config["model"]["init_args"]["backbone"] != "colour-stats":
        for value in ("backbone=resnet10t", "pretrained=false", "model_kwargs={channels: [8, 8, 16, 16], stem_width: 8}"):
            args += ["--set", f"model.init_args.{value}"]
    if model == "ContrastiveZeroShot":
        args += ["--set", "model.init_args.model_kwargs={channels: [8, 8, 16, 16], stem_width: 8}",
                 "--set", "model.init_args.text_encoder=hash", "--set", "model.init_args.embed_dim=32"]
    if model == "ClipZeroShot":
        args += ["--set", f"model.init_args.arch={clip[0]}", "--weights", str(clip[1])]
    if model == "SegmentationTask":
        args += ["--set", f"model.init_args.classifier={classifier}"]
    return args


def submission(data: Path, task: str, recipe: str | Path, out: Path, extra: list[str]) -> dict[str, bytes]:
    """The files of the submission a run writes (a segmentation run's score maps too):
    name -> bytes."""
    rc = main(["run", "--task", task, "--data", str(data), "--config", str(recipe), "--out", str(out),
               "--quiet", "--no-leaderboard", *extra])
    assert rc == 0, f"{recipe} on {data.name}: exit {rc}"
    sub = out / "seed0" / "predictions"
    if not sub.is_dir():
        return {"predictions.csv": (out / "seed0" / "predictions.csv").read_bytes()}
    return {f.relative_to(sub).as_posix(): f.read_bytes() for f in sorted(sub.rglob("*")) if f.is_file()}


def predicted(data: Path, task: str, name: str, extra: list[str], classifier: Path) -> dict[str, bytes]:
    """The recipe's task class on its data module, in process, with the same tiny settings
    (its training and prediction; not the run's plots, scoring and reference baselines):
    sample id -> the ranked species, or the mask's and score map's bytes."""
    import lightning as L

    from minbench.recipes import apply_override, instantiate, load_recipe
    from minbench.trainers.base import BaseTask
    from minbench.trainers.segmentation import SegmentationTask, load_classifier

    config = load_recipe(shipped_recipes()[name])
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag == "--set":
            apply_override(config, value)
    L.seed_everything(0, workers=True, verbose=False)
    inject = {"data_dir": data, "task": task, "seed": 0}
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    if task == "segmentation":
        net, classes = load_classifier(classifier)
        dm = instantiate(config["data"], "data", L.LightningDataModule, **inject, image_size=32,
                         classes=list(classes), augment=False)
        model = instantiate(config["model"], "model", SegmentationTask, **{**config["model"]["init_args"],
                            "classifier": net, "classes": classes, "image_size": 32, "task": task})
        return {r.sample_id: r.mask.tobytes() + r.score.tobytes()  # the mask and its score map
                for batch in trainer.predict(model, datamodule=dm) for r in batch}
    dm = instantiate(config["data"], "data", L.LightningDataModule, **inject)
    dm.setup("fit")
    model = instantiate(config["model"], "model", BaseTask, task=task, num_classes=dm.num_classes,
                        classes=list(dm.classes))
    trainer.fit(model, datamodule=dm)
    return {sid: json.dumps(ranked).encode() for out in trainer.predict(model, datamodule=dm)
            for sid, ranked in zip(out["sample_id"], out["species"])}


RECIPES = sorted(shipped_recipes())
#: run whole (``minbench run``): the default recipe of each task kind and every recipe with
#: a task class or data path of its own (the reference rows of the four cues among them), and
#: the CAM recipes whose threshold is chosen on the validation part (a pass of the run's own)
WHOLE = {"fewshot-small-cnn", "colour-logistic", "size-cube", "size-extent", "zeroshot-minilm", "clip-vit-b32",
         "zeroshot-colour-words", "segmentation-scorecam-grabcut", "segmentation-gradcam-grabcut",
         "segmentation-gradcam-superpixels"}
#: the others are checked at their task class and data path (in process, same tiny
#: settings): a large backbone's classifier (``ClassificationTask``, ``FeatureBaselineTask``,
#: a tiny network in its place) and the other CAM methods of ``SegmentationTask``: a run of
#: each would repeat the pipeline ``WHOLE`` already runs (plots, scoring, baselines)


def test_every_shipped_recipe_is_checked_and_the_whole_runs_are_shipped():
    """The check below enumerates the shipped recipes itself (a new recipe is in it); every
    recipe it runs whole exists, and every reference row is run whole."""
    assert WHOLE <= set(RECIPES)
    references = {name for name in RECIPES if yaml.safe_load(shipped_recipes()[name].read_text()).get("role")
                  == "reference"}
    assert {"colour-logistic", "zeroshot-colour-words", "size-extent"} <= references <= WHOLE


@pytest.mark.parametrize("name", RECIPES)
def test_predictions_do_not_depend_on_the_test_truth(name, tiny_dataset, garbled, tiny_classifier, tiny_clip,
                                                     tmp_path):
    path = shipped_recipes()[name]
    config = yaml.safe_load(path.read_text())
    task = config["task"]
    extra = tiny_settings(name, config, tiny_classifier, tiny_clip)
    if name in WHOLE:
        honest = submission(tiny_dataset, task, name, tmp_path / "tiny", extra)
        blind = submission(garbled(task), task, name, tmp_path / "garbled", extra)
    else:
        honest = predicted(tiny_dataset, task, name, extra, tiny_classifier)
        blind = predicted(garbled(task), task, name, extra, tiny_classifier)
    assert honest and honest.keys() == blind.keys()
    changed = [f for f in honest if honest[f] != blind[f]]
    assert not changed, f"{name} on {task}: {len(changed)} of {len(honest)} predictions follow the test truth"


# --------------------------------------------------------------------------- the leaking double
class LeakyClassifier(ClassificationTask):
    """A test double that cheats: it ranks each test photo's species, read from the
    context's frame, first. On a sealed frame it finds nothing and predicts honestly."""

    def configure_data(self, context) -> None:
        super().configure_data(context)
        frame = context.frame
        self.answer = {int(p): str(frame["species"].iloc[p]) for p in context.split_positions("test")}

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        out = super().predict_step(batch, batch_idx, dataloader_idx)
        for row, index in zip(out["species"], batch["index"].tolist()):
            true = self.answer.get(int(index), "")
            if true in row:
                row.remove(true)
                row.insert(0, true)
        return out


def test_the_leaking_double_predicts_honestly_on_sealed_rows(tiny_dataset, garbled, tmp_path):
    """Fails on a data module that hands test truth to a method (the code before issue 22)."""
    recipe = tmp_path / "leaky.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "leaky", "task": "fewshot-10", "seeds": [0],
        "model": {"class_path": f"{__name__}.LeakyClassifier",
                  "init_args": yaml.safe_load(TINY_CNN)},
        "data": {"class_path": "minbench.data.datamodule.MineralDataModule",
                 "init_args": {"image_size": 32, "batch_size": 8, "num_workers": 0, "val_fraction": 0.0}},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1}}))
    honest = submission(tiny_dataset, "fewshot-10", recipe, tmp_path / "tiny", [])
    blind = submission(garbled("fewshot-10"), "fewshot-10", recipe, tmp_path / "garbled", [])
    assert honest == blind, "the leaking double's predictions follow the test rows' species"


# --------------------------------------------------------------------------- what a method sees
@pytest.mark.parametrize("task", task_ids())
def test_a_method_reaches_only_the_public_columns_of_a_test_row(task, tiny_dataset, tmp_path):
    import minbench
    from minbench.data.datamodule import MineralDataModule

    card = get_card(task)
    full = manifest.read_manifest(tiny_dataset)
    public = set(card.public_columns("test")) & set(full.columns)
    test = card.positions(full, "test")
    size = None if card.kind == "size" else 32
    for dm in (MineralDataModule(tiny_dataset, task=task, image_size=size, batch_size=64, num_workers=0,
                                 cache_dir=tmp_path / "cache"),
               minbench.get_task(task).datamodule(tiny_dataset, image_size=size, batch_size=64, num_workers=0,
                                                  cache_dir=tmp_path / "cache")):
        dm.setup("test")
        context = dm.task_context()
        assert set(dm.test_frame.columns) == public
        assert set(dm.frame_of("test").columns) == public
        assert set(context.rows("test").columns) == public
        for loader in (dm.test_dataloader(), dm.predict_dataloader()):
            for batch in loader:
                assert set(batch) <= BATCH_KEYS | public, set(batch) - BATCH_KEYS - public
        # the frames a method holds: every truth column of a test row is blank
        for frame in (dm.frame, context.frame):
            for column in card.truth_columns(full.columns):
                blank = frame[column].iloc[test]
                assert (blank.isna() | (blank.astype(str) == "")).all() or not blank.astype(bool).any(), column
        # and no unsealed copy of the manifest hides on the module, its cache or the context
        for owner in (dm, dm.cache, context):
            for attr, value in vars(owner).items():
                if hasattr(value, "columns") and "species" in value.columns and len(value) == len(full):
                    assert (value["species"].iloc[test] == "").all(), attr
    if card.public_candidates:
        assert context.candidates == tuple(card.classes(full))
    else:
        assert context.candidates == ()


def test_cam_target_true_is_refused_before_any_work(tiny_dataset, tmp_path, capsys):
    rc = main(["run", "--task", "segmentation", "--data", str(tiny_dataset), "--out", str(tmp_path / "out"),
               "--cam-target", "true", "--quiet", "--no-leaderboard"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "--cam-target true" in err and "true class" in err
    assert not (tmp_path / "out").exists()
