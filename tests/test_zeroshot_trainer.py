"""The zero-shot task modules on the tiny embedded dataset: class disjointness, prediction, CLIP."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch

from minbench.data.datamodule import MineralDataModule
from minbench.data.manifest import read_manifest
from minbench.errors import UserError
from minbench.trainers.zeroshot import ClipZeroShot, ContrastiveZeroShot, TrainingLeak


def _dm(data, tmp_path, **kw):
    args = dict(task="zeroshot", image_size=32, batch_size=16, num_workers=0, val_fraction=0.1, seed=0,
                cache_dir=tmp_path / "cache")
    args.update(kw)
    dm = MineralDataModule(data, **args)
    dm.setup("test")
    return dm


def _trainer(epochs=1, callbacks=()):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                     callbacks=list(callbacks))


def _model(**kw):
    args = dict(backbone="test_resnet", text_encoder="hash", embed_dim=32, lr=1e-3)
    args.update(kw)
    return ContrastiveZeroShot(**args)


class RecordBatches(L.Callback):
    def __init__(self):
        self.indices = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.indices.append(batch["index"].cpu())


def test_no_zeroshot_class_ever_reaches_a_training_batch(tiny_dataset, tmp_path):
    L.seed_everything(0, verbose=False)
    dm = _dm(tiny_dataset, tmp_path)
    model = _model()  # no configure_data call: fit's setup() hands the model dm.task_context()
    rec = RecordBatches()
    _trainer(epochs=2, callbacks=[rec]).fit(model, datamodule=dm)
    seen_rows = torch.cat(rec.indices).numpy()
    species = dm.frame["species"].to_numpy()
    zs_species = set(species[dm.frame["zeroshot"].to_numpy()])
    assert zs_species, "the tiny dataset must have zero-shot classes for this test to mean anything"
    trained = set(species[seen_rows])
    assert not trained & zs_species
    # every training row was used (the test is not vacuous) and nothing else
    assert len(seen_rows) == 2 * len(dm.positions["train"])
    assert set(seen_rows) == set(dm.positions["train"].tolist())
    # and the only sample texts the losses read are the training rows' own
    assert model.context is dm.task_context()
    assert set(np.flatnonzero(model.bank.row_has_text.numpy())) == set(dm.positions["train"].tolist())


def test_a_leaking_batch_is_refused(tiny_dataset, tmp_path):
    dm = _dm(tiny_dataset, tmp_path)
    model = _model()
    model.configure_data(dm.task_context())
    zs_row = int(dm.positions["test"][0])
    batch = {"image": torch.zeros(2, 3, 32, 32), "index": torch.tensor([int(dm.positions["train"][0]), zs_row]),
             "label": torch.tensor([0, -1])}
    with pytest.raises(TrainingLeak, match="zero-shot classes"):
        model.training_step(batch, 0)


def test_prediction_ranks_every_zeroshot_row_among_unseen_candidates(tiny_dataset, tmp_path):
    L.seed_everything(0, verbose=False)
    dm = _dm(tiny_dataset, tmp_path)
    model = _model(top_k=5)
    trainer = _trainer(epochs=1)
    trainer.fit(model, datamodule=dm)
    out = trainer.predict(model, datamodule=dm)
    index = torch.cat([o["index"] for o in out]).numpy()
    ranked = torch.cat([o["indices"] for o in out])
    assert sorted(index.tolist()) == sorted(dm.positions["test"].tolist())
    n_cand = len(model.unseen.classes)
    assert ranked.shape == (len(index), min(5, n_cand))
    assert ((ranked >= 0) & (ranked < n_cand)).all()
    assert all(len(set(r.tolist())) == r.numel() for r in ranked)  # no class twice in a row
    truth = read_manifest(tiny_dataset)["species"].to_numpy()
    assert set(model.unseen.classes) == set(truth[dm.positions["test"]]) == set(dm.task_context().candidates)
    assert not set(model.unseen.classes) & set(model.seen_classes)
    # GZSL pass over the held-out seen images: every validation pass leaves them
    trainer.validate(model, datamodule=dm, verbose=False)
    got = torch.cat([o["index"] for o in model.gzsl_rows]).numpy()
    assert sorted(got.tolist()) == sorted(dm.positions["val"].tolist())


def test_class_embeddings_come_from_class_texts(tiny_dataset, tmp_path):
    """Seen and unseen classes alike: the dataset's class description, or the name prompts."""
    dm = _dm(tiny_dataset, tmp_path)
    ctx = dm.task_context()
    assert set(dm.classes) | set(ctx.candidates) <= set(ctx.class_texts)
    by_source = {}
    for source in ("names", "class_text", "both"):
        model = _model(text_source=source)
        model.configure_data(ctx)
        by_source[source] = {w: model.class_embeddings(w)["emb"] for w in ("seen", "unseen")}
        assert bool(model.bank.unseen_has_text.all()) == (source != "names")
    for w in ("seen", "unseen"):
        assert not torch.allclose(by_source["names"][w], by_source["class_text"][w])
        assert not torch.allclose(by_source["both"][w], by_source["class_text"][w])


def test_clip_model_predicts_with_a_tiny_architecture(tiny_dataset, tmp_path):
    from test_clip import TINY

    arch = tmp_path / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    model = ClipZeroShot(arch=str(arch), allow_random=True, templates=["a photo of {}.", "{} mineral"])
    dm = _dm(tiny_dataset, tmp_path, image_size=model.image_size)
    assert not model.trainable
    out = _trainer().predict(model, datamodule=dm)
    ranked = torch.cat([o["indices"] for o in out])
    assert ranked.shape == (len(dm.positions["test"]), min(10, len(model.unseen.classes)))
    assert "seen_value" in out[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(templates=["a photo of a mineral."]), "no '{}' placeholder"),
    (dict(templates=[]), "no templates"),
    (dict(text_source="poems"), "text_source"),
    (dict(text_encoder="word2vec"), "text_encoder"),
    (dict(top_k=11), "top_k"),
])
def test_bad_model_settings_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        _model(**kwargs)


def test_user_class_list_must_not_hold_training_classes(tiny_dataset, tmp_path):
    dm = _dm(tiny_dataset, tmp_path)
    seen = dm.classes[0]
    path = tmp_path / "classes.txt"
    path.write_text(f"{seen}\n")
    model = _model(classnames_file=str(path))
    with pytest.raises(UserError, match="also a training class"):
        model.configure_data(dm.task_context())


def test_zeroshot_trainer_refuses_other_tasks():
    with pytest.raises(UserError, match="zero-shot tasks only"):
        _model(task="fewshot-10")


def test_seen_class_validation_metrics_stay_separate(tiny_dataset, tmp_path):
    """top-1 and top-5 must not be merged into one compute group by torchmetrics."""
    dm = _dm(tiny_dataset, tmp_path)
    model = _model()
    model.configure_data(dm.task_context())
    n = len(model.seen_classes)
    first = torch.zeros(4, n)
    first[:, 0] = 1.0  # a first batch with top-1 == top-5 states
    model.val_metrics.update(first, torch.zeros(4, dtype=torch.long))
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        model.val_metrics.update(torch.randn(32, n, generator=g), torch.randint(0, n, (32,), generator=g))
    values = model.val_metrics.compute()
    assert values["val/top5"] > values["val/top1"]


def test_clip_never_encodes_sample_descriptions(tiny_dataset, tmp_path):
    from test_clip import TINY

    arch = tmp_path / "tiny-clip.json"
    arch.write_text(json.dumps(TINY))
    for source in ("names", "both"):
        model = ClipZeroShot(arch=str(arch), allow_random=True, text_source=source)
        dm = _dm(tiny_dataset, tmp_path, image_size=model.image_size)
        model.configure_data(dm.task_context())
        assert not model.bank.row_has_text.any()  # training-free: no sample text at all
        assert bool(model.bank.unseen_has_text.any()) == (source == "both")
