"""Trainers: the common base, the fine-tuned classifier and the training-free baselines,
on a tiny in-memory data module that yields the data module's batch dicts."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from minbench.cards import get_card
from minbench.errors import UserError
from minbench.models.feature_baselines import KNNHead, PrototypeHead
from minbench.trainers.base import BaseTask
from minbench.trainers.classification import ClassificationTask, FeatureBaselineTask

CLASSES = ["azurite", "beryl", "calcite", "dioptase", "epidote"]
TINY = {"channels": [8, 8, 16, 16]}


class _Colours(Dataset):
    """Class c is an image whose mean colour is a fixed, distinct point, plus noise."""

    def __init__(self, n_per_class: int, seed: int, unknown: int = 0):
        g = torch.Generator().manual_seed(seed)
        centres = torch.rand(len(CLASSES), 3, generator=torch.Generator().manual_seed(99)) * 2 - 1
        labels = torch.arange(len(CLASSES)).repeat_interleave(n_per_class)
        self.images = centres[labels][:, :, None, None] + 0.3 * torch.randn(len(labels), 3, 16, 16, generator=g)
        self.labels = torch.cat([labels, torch.full((unknown,), -1)])
        if unknown:
            self.images = torch.cat([self.images, torch.randn(unknown, 3, 16, 16, generator=g)])
        self.offset = seed * 1000

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i], "index": torch.tensor(self.offset + i),
                "sample_id": f"s{self.offset + i}"}


class _TinyData(L.LightningDataModule):
    classes = CLASSES
    num_classes = len(CLASSES)

    def __init__(self, unknown: int = 0):
        super().__init__()
        self.train, self.val, self.test = _Colours(12, 0), _Colours(4, 1), _Colours(4, 2, unknown=unknown)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=16)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=16)

    def predict_dataloader(self):
        return DataLoader(self.test, batch_size=16)


def _trainer(tmp_path, epochs=3):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                     default_root_dir=tmp_path)


def _classifier(**kw):
    args = dict(task="fewshot-10", backbone="resnet10t", num_classes=len(CLASSES), classes=CLASSES,
                model_kwargs=TINY, lr=0.01, scheduler="constant")
    return ClassificationTask(**{**args, **kw})


def test_base_task_needs_models_and_checks_hyperparameters():
    class NoModel(BaseTask):
        pass

    with pytest.raises(NotImplementedError):
        NoModel("fewshot-10")
    with pytest.raises(UserError, match="optimizer: 'lbfgs'"):
        _classifier(optimizer="lbfgs")
    with pytest.raises(UserError, match="scheduler"):
        _classifier(scheduler="step")
    with pytest.raises(UserError, match="3 class names for num_classes=5"):
        _classifier(classes=CLASSES[:3])


def test_metrics_and_monitor_come_from_the_card():
    model = _classifier(task="fewshot-98")
    card = get_card("fewshot-98")
    for stage in ("train", "val", "test"):
        assert set(model.metrics_for(stage).keys(keep_base=True)) == {m.name for m in card.metrics}
    # what a checkpoint watches is the card's alone (the task module does not repeat it)
    assert model.card.monitor == f"val/{card.headline}" and model.card.monitor_mode == "max"
    assert not hasattr(model, "monitor") and not hasattr(model, "mode")
    # hyperparameters of the subclass are saved (checkpoints are self-describing)
    assert model.hparams.backbone == "resnet10t" and model.hparams.classes == CLASSES


def test_classifier_learns_and_logs_every_stage(tmp_path):
    L.seed_everything(0, workers=True)
    model = _classifier()
    dm = _TinyData()
    trainer = _trainer(tmp_path, epochs=4)
    trainer.fit(model, datamodule=dm)
    logged = trainer.callback_metrics
    assert {"train/loss_epoch", "val/loss", "val/top1", "val/top10", "val/macro_recall"} <= set(logged)
    assert "train/top1" in logged
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert result["test/top1"] > 0.6  # chance is 0.2
    assert result["test/top5"] == pytest.approx(1.0)  # five classes: top-5 always holds
    assert result["test/top1"] <= result["test/top3"] <= result["test/top5"]


def test_predict_step_yields_ranked_species(tmp_path):
    model = _classifier()
    dm = _TinyData()
    out = _trainer(tmp_path).predict(model, datamodule=dm)
    batch = out[0]
    assert batch["ranked"].shape == (16, 5)  # k = min(card's 10 ranks, 5 classes)
    assert torch.all(batch["scores"][:, :-1] >= batch["scores"][:, 1:])
    for ranked, species in zip(batch["ranked"].tolist(), batch["species"]):
        assert species == [CLASSES[i] for i in ranked] and sorted(species) == CLASSES
    assert batch["sample_id"][0] == "s2000" and batch["index"][0].item() == 2000


def test_unknown_labels_are_left_out_of_loss_and_metrics(tmp_path):
    model = _classifier()
    dm = _TinyData(unknown=6)
    trainer = _trainer(tmp_path, epochs=2)
    trainer.fit(model, datamodule=dm)
    res = trainer.test(model, datamodule=dm, verbose=False)[0]
    # every known test image is counted; the six unknown ones are not (all ranks hold anyway)
    assert res["test/top5"] == pytest.approx(1.0) and torch.isfinite(torch.tensor(res["test/loss"]))


def test_same_seed_twice_gives_the_same_metrics(tmp_path):
    results = []
    for run in range(2):
        L.seed_everything(3, workers=True)
        model = _classifier()
        trainer = _trainer(tmp_path / str(run), epochs=2)
        trainer.fit(model, datamodule=_TinyData())
        results.append(trainer.test(model, datamodule=_TinyData(), verbose=False)[0])
    assert results[0] == results[1]


def test_prototype_head_is_the_class_mean_direction():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.2], [0.0, 2.0], [0.1, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    head = PrototypeHead(2)
    head.fit(feats, labels)
    assert head.prototypes.shape == (2, 2) and head.fitted
    assert head(torch.tensor([[1.0, 0.1], [0.0, 1.0]])).argmax(1).tolist() == [0, 1]
    with pytest.raises(ValueError, match="no training embedding"):
        PrototypeHead(3).fit(feats, labels)


def test_knn_ranks_voted_classes_first_then_by_prototype():
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.05]])
    labels = torch.tensor([0, 0, 1, 2])
    head = KNNHead(3, k=1)
    head.fit(feats, labels)
    scores = head(torch.tensor([[-0.2, 1.0]]))
    # nearest neighbour is class 1; of the others, class 2's prototype is closer than class 0's
    assert scores.argsort(descending=True)[0].tolist() == [1, 2, 0]


@pytest.mark.parametrize("head", ["prototype", "knn", "logistic"])
def test_feature_baseline_is_training_free_and_survives_a_checkpoint(tmp_path, head):
    L.seed_everything(0, workers=True)
    model = FeatureBaselineTask(task="fewshot-10", backbone="resnet10t", num_classes=5, classes=CLASSES,
                                   pretrained=False, head=head, k=5, model_kwargs=TINY)
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=2)
    dm = _TinyData()
    trainer.fit(model, datamodule=dm)
    assert trainer.current_epoch == 1  # one pass, whatever max_epochs says
    assert all(torch.equal(before[k], v) for k, v in model.model.state_dict().items())  # frozen (BN too)
    res = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert res["test/top1"] > 0.4  # random features of colour images still separate them
    ckpt = tmp_path / "fb.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = FeatureBaselineTask.load_from_checkpoint(ckpt, weights_only=True)
    x = dm.test.images[:8]
    loaded.eval(), model.eval()
    assert torch.allclose(loaded(x), model(x))


def test_data_reaches_a_task_through_setup_once_per_context(tmp_path):
    """The one route from data to model: BaseTask.setup hands trainer.datamodule.task_context()
    to configure_data, once however many Trainer calls follow; a data module without it is fine."""
    import pandas as pd

    from minbench.data.context import TaskContext

    context = TaskContext(card=get_card("fewshot-10"), root=tmp_path, source="synth",
                          frame=pd.DataFrame({"species": CLASSES}), positions={"test": [1, 3]},
                          classes=tuple(CLASSES))

    class WithContext(_TinyData):
        def task_context(self):
            return context

    class Probe(ClassificationTask):
        def configure_data(self, ctx):
            super().configure_data(ctx)
            self.calls = getattr(self, "calls", 0) + 1

    model = Probe(task="fewshot-10", backbone="resnet10t", num_classes=len(CLASSES), classes=CLASSES,
                  model_kwargs=TINY, scheduler="constant")
    trainer = _trainer(tmp_path, epochs=1)
    trainer.fit(model, datamodule=WithContext())
    trainer.predict(model, datamodule=WithContext())
    assert model.calls == 1 and model.context is context
    test_rows = model.context.rows("test")   # sealed: the public columns only
    assert test_rows.index.tolist() == [1, 3] and "species" not in test_rows.columns
    bare = Probe(task="fewshot-10", backbone="resnet10t", num_classes=len(CLASSES), classes=CLASSES,
                 model_kwargs=TINY)
    _trainer(tmp_path, epochs=1).predict(bare, datamodule=_TinyData())
    assert bare.context is None and not hasattr(bare, "calls")
