"""MineralDataModule: the contract the trainers code against, on small hand-made datasets."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from minbench.data import manifest
from minbench.errors import UserError

SPECIES = ["calcite", "fluorite", "pyrite", "quartz", "beryl", "galena"]
# a class is recognisable from its image: its mean colour is this
COLOURS = np.array([(220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40), (40, 220, 220), (220, 40, 220)])


def class_of(image_hw3: np.ndarray) -> int:
    """The class whose colour is nearest to an image's mean colour (the inverse of make_dataset)."""
    mean = image_hw3.reshape(-1, 3).mean(0)
    return int(np.argmin(((COLOURS - mean) ** 2).sum(1)))


def make_dataset(root: Path, *, train=6, test=3, n_fewshot=4, zeroshot=4, seg_every=5, size_every=4,
                 wh=(64, 48), bad: dict[int, str] | None = None) -> Path:
    """Write a few dozen small JPEGs and their manifest; returns ``root``.

    Species 0..n_fewshot-1 are the fewshot-10 classes (``train`` + ``test`` rows each), the
    next species is the zero-shot class (``zeroshot`` rows). Every ``seg_every``-th row has
    a mask (a rectangle where the image is bright), every ``size_every``-th a size.
    ``bad``: row number -> kind of broken file to write instead (see ``_write_bad``).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "img").mkdir(exist_ok=True)
    (root / "mask").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = wh
    rows, i = [], 0
    plan = [(c, "train") for c in range(n_fewshot) for _ in range(train)]
    plan += [(c, "test") for c in range(n_fewshot) for _ in range(test)]
    plan += [(n_fewshot, "zeroshot") for _ in range(zeroshot)]
    for c, split in plan:
        arr = (COLOURS[c] + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)
        x0, y0 = int(rng.integers(2, w // 2)), int(rng.integers(2, h // 2))
        x1, y1 = x0 + w // 3, y0 + h // 3
        arr[y0:y1, x0:x1] = np.minimum(arr[y0:y1, x0:x1].astype(int) + 30, 255)
        path = root / "img" / f"{i:03d}.jpg"
        if bad and i in bad:
            _write_bad(path, arr, bad[i])
        else:
            Image.fromarray(arr).save(path, quality=92)
        row = manifest.empty_row()
        row.update(sample_id=f"s{i:03d}", image_path=f"img/{i:03d}.jpg", width=w, height=h,
                   species=SPECIES[c], source="synth", description=f"a {SPECIES[c]}")
        if split == "zeroshot":
            row["zeroshot"] = True
        else:
            row["fewshot_10"] = split
        if i % seg_every == 0:
            m = np.zeros((h, w), np.uint8)
            m[y0:y1, x0:x1] = 255
            Image.fromarray(m).save(root / "mask" / f"{i:03d}.png")
            row.update(segmentation=True, mask_path=f"mask/{i:03d}.png")
        if i % size_every == 1:
            row.update(size=True, size_cm=2.0 + i / 10, px_per_cm=8.0,
                       bbox=manifest.format_box([x0, y0, x1, y1]), cube_bbox=manifest.format_box([1, 1, 9, 9]))
        rows.append(row)
        i += 1
    manifest.write_dataset(root, pd.DataFrame(rows), name="handmade", version="1", source="synth")
    return root


def _write_bad(path: Path, arr: np.ndarray, kind: str) -> None:
    if kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    elif kind == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif kind == "missing":
        pass
    elif kind == "huge":  # far more pixels than the rest (the test sets max_pixels below it)
        Image.fromarray(np.resize(arr, (arr.shape[0] * 8, arr.shape[1] * 8, 3))).save(path, format="JPEG")
    elif kind == "gray":
        Image.fromarray(arr).convert("L").save(path, format="JPEG")
    elif kind == "cmyk":
        Image.fromarray(arr).convert("CMYK").save(path, format="JPEG")
    elif kind == "rotated":  # stored sideways with an EXIF orientation that turns it upright
        exif = Image.Exif()
        exif[0x0112] = 8
        Image.fromarray(np.rot90(arr, -1).copy()).save(path, format="JPEG", exif=exif.tobytes())
    elif kind == "png16":
        Image.fromarray(arr[..., 0].astype(np.uint16) * 257).save(path, format="PNG")
    else:
        raise ValueError(kind)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("handmade"))


def _dm(data, tmp_path, **kw):
    from minbench.data.datamodule import MineralDataModule

    args = dict(task="fewshot-10", image_size=32, batch_size=8, num_workers=0, cache_dir=tmp_path / "cache")
    args.update(kw)
    return MineralDataModule(data, **args)


def _batches(dm, loader, train=False):
    return [dm.transform_batch(b, train=train, batch_idx=i) for i, b in enumerate(loader)]


def test_classification_contract(dataset, tmp_path):
    dm = _dm(dataset, tmp_path)
    dm.setup("test")
    assert dm.classes == sorted(SPECIES[:4]) and dm.num_classes == 4
    batches = _batches(dm, dm.test_dataloader())
    b = batches[0]
    assert b["image"].dtype == torch.float32 and b["image"].shape == (8, 3, 32, 32)
    assert "label" not in b and b["index"].dtype == torch.int64   # sealed: a test batch has no label
    assert isinstance(b["sample_id"], list) and isinstance(b["sample_id"][0], str)
    ids = [s for b in batches for s in b["sample_id"]]
    assert ids == dm.test_frame["sample_id"].tolist()
    assert [int(i) for b in batches for i in b["index"]] == dm.test_frame.index.tolist()
    assert (dm.test_frame["fewshot_10"] == "test").all() and len(ids) == 12
    assert "species" not in dm.test_frame.columns and (dm.frame.loc[dm.test_frame.index, "species"] == "").all()
    # normalised with the exposed constants: undo it and recover each image's class colour
    truth = manifest.read_manifest(dataset)["species"]
    for b in batches:
        raw = b["image"] * torch.tensor(dm.std)[:, None, None] + torch.tensor(dm.mean)[:, None, None]
        for img, idx in zip(raw, b["index"]):
            assert class_of(img.permute(1, 2, 0).numpy() * 255) == SPECIES.index(truth[int(idx)])


def test_train_labels_follow_their_images_and_val_is_a_stratified_record(dataset, tmp_path):
    dm = _dm(dataset, tmp_path, val_fraction=0.34, seed=3)
    dm.setup("fit")
    train = dm.frame_of("train")
    val = dm.frame_of("val")
    assert set(train.index).isdisjoint(val.index)
    assert len(train) + len(val) == 24
    assert val["species"].value_counts().to_dict() == {s: 2 for s in SPECIES[:4]}  # 6 * 0.34 -> 2 per class
    rec = json.loads(dm.split_path.read_text())
    assert rec["val_sample_ids"] == val["sample_id"].tolist() and rec["seed"] == 3
    again = _dm(dataset, tmp_path, val_fraction=0.34, seed=3)
    again.setup("fit")
    assert again.frame_of("val")["sample_id"].tolist() == val["sample_id"].tolist()
    other = _dm(dataset, tmp_path, val_fraction=0.34, seed=4)
    other.setup("fit")
    assert other.frame_of("val")["sample_id"].tolist() != val["sample_id"].tolist()
    seen = 0
    for b in dm.train_dataloader():
        for img, label, idx in zip(b["image"], b["label"], b["index"]):
            assert dm.classes[label] == dm.frame.loc[int(idx), "species"]
            assert class_of(img.numpy()) == SPECIES.index(dm.classes[label])
            seen += 1
    assert seen == len(train)
    assert len(list(dm.val_dataloader())) == 1


def test_tiny_class_keeps_its_train_image(tmp_path):
    data = make_dataset(tmp_path / "d", train=1, test=1)
    dm = _dm(data, tmp_path, val_fraction=0.5)
    dm.setup("fit")
    assert len(dm.frame_of("train")) == 4 and len(dm.frame_of("val")) == 0
    assert dm.val_dataloader() == []


def test_zeroshot_train_is_disjoint_and_test_rows_are_sealed(dataset, tmp_path):
    dm = _dm(dataset, tmp_path, task="zeroshot")
    dm.setup("fit")
    dm.setup("test")
    assert "beryl" not in dm.classes and "species" not in dm.test_frame.columns and len(dm.test_frame) == 4
    assert "beryl" not in set(dm.frame_of("train")["species"])
    # the candidates' names are public (the card says so); which photo is which is not
    assert dm.task_context().candidates == ("beryl",)
    assert all("label" not in b for b in dm.test_dataloader())


def test_segmentation_batch_has_sizes_but_no_mask(dataset, tmp_path):
    dm = _dm(dataset, tmp_path, task="segmentation", batch_size=4)
    dm.setup("test")
    assert dm.test_frame["segmentation"].all() and "mask_path" not in dm.test_frame.columns
    for b in _batches(dm, dm.test_dataloader()):
        assert set(b) == {"image", "index", "sample_id", "orig_size"}   # the mask is the scorer's
        assert b["orig_size"].dtype == torch.int64 and b["orig_size"].tolist()[0] == [48, 64]
    with pytest.raises(UserError, match="test-only"):
        _dm(dataset, tmp_path, task="segmentation").setup("fit")


def test_cached_rows_with_masks_stay_aligned(dataset, tmp_path):
    """The dataset's mask field (for training rows whose card makes masks an input; no
    shipped card does) reads masks aligned with the image."""
    from minbench.data.cache import ImageCache
    from minbench.data.datasets import CachedImages

    frame = manifest.read_manifest(dataset)
    pos = np.flatnonzero(frame["segmentation"].to_numpy())
    cache = ImageCache(dataset, frame, 32, root=tmp_path / "cache")
    cache.ensure(pos)
    b = CachedImages(cache, frame, pos, np.zeros(len(pos), np.int64), with_mask=True).__getitems__(range(len(pos)))
    assert b["mask"].dtype == torch.uint8 and b["mask"].shape[1:] == (1, 32, 32)
    for img, mask in zip(b["image"].float().mean(-1), b["mask"][:, 0].bool()):
        assert mask.any() and (~mask).any()
        assert img[mask].mean() > img[~mask].mean() + 10   # the mask sits on the bright patch


def test_size_batch_and_native_resolution_path(dataset, tmp_path):
    dm = _dm(dataset, tmp_path, task="size")
    dm.setup("test")
    b = next(iter(_batches(dm, dm.test_dataloader())))
    # sealed: the size, the scale and the boxes are the scorer's
    assert set(b) == {"image", "index", "sample_id", "orig_size"}
    assert not {"size_cm", "px_per_cm", "bbox", "cube_bbox"} & set(dm.test_frame.columns)
    native = _dm(dataset, tmp_path, task="size", image_size=None, batch_size=3)
    native.setup("test")
    nb = next(iter(native.test_dataloader()))
    nb = native.on_after_batch_transfer(nb, 0)
    assert isinstance(nb["image"], list) and len(nb["image"]) == 3
    assert nb["image"][0].shape == (48, 64, 3) and nb["image"][0].dtype == np.uint8
    assert nb["orig_size"].tolist()[0] == [48, 64] and "bbox" not in nb and "mask" not in nb
    assert not any(native.cache.folder.glob("*.u8"))  # native path: no pixel cache
    with pytest.raises(UserError, match="test-only"):
        native.setup("fit")


def test_unseen_test_class_and_bad_arguments_are_user_errors(tmp_path):
    data = make_dataset(tmp_path / "d", train=2, test=1)
    df = manifest.read_manifest(data)
    df.loc[df["species"] == "pyrite", "fewshot_10"] = np.where(
        df.loc[df["species"] == "pyrite", "fewshot_10"] == "train", "", "test")
    manifest.write_dataset(data, df, name="x", version="1", source="synth")
    with pytest.raises(UserError, match="'pyrite'.*no train image"):
        _dm(data, tmp_path).setup("test")
    with pytest.raises(UserError, match="limit"):
        _dm(data, tmp_path, limit=0)
    with pytest.raises(UserError, match="val_fraction"):
        _dm(data, tmp_path, val_fraction=1.0)
    with pytest.raises(UserError, match="fewshot-11"):
        _dm(data, tmp_path, task="fewshot-11")


def test_limit_keeps_classes_covered(dataset, tmp_path):
    dm = _dm(dataset, tmp_path, limit=5, val_fraction=0)
    dm.setup("fit")
    dm.setup("test")
    train = dm.frame_of("train")
    assert len(train) == 5 and train["species"].nunique() == 4
    assert len(dm.test_frame) == 5 and dm.num_classes == 4
    half = _dm(dataset, tmp_path, limit=0.5, val_fraction=0)
    half.setup("fit")
    assert len(half.frame_of("train")) == 12 and half.frame_of("train")["species"].value_counts().min() == 3


def test_bad_images_drop_out_with_their_labels(tmp_path, caplog):
    bad = {0: "truncated", 3: "garbage", 7: "missing", 10: "huge", 1: "gray", 2: "cmyk", 4: "rotated",
           5: "png16", 25: "truncated"}   # 25 is a test row
    data = make_dataset(tmp_path / "d", bad=bad)
    dm = _dm(data, tmp_path, val_fraction=0, max_pixels=64 * 48 * 4)
    with caplog.at_level("WARNING", logger="minbench.data"):
        dm.setup("fit")
        dm.setup("test")
    skipped = dm.skipped
    assert sorted(skipped["sample_id"]) == ["s000", "s003", "s007", "s010", "s025"]
    reasons = dict(zip(skipped["sample_id"], skipped["reason"]))
    assert "truncated" in reasons["s000"].lower() and "not found" in reasons["s007"] and "bomb" in reasons["s010"]
    report = pd.read_csv(dm.cache.report_file)
    assert set(report["image_path"]) == {f"img/{i:03d}.jpg" for i in (0, 3, 7, 10, 25)}
    assert "img/000.jpg" in caplog.text
    assert "s025" not in dm.test_frame["sample_id"].tolist() and len(dm.test_frame) == 11
    truth = manifest.read_manifest(data)["species"]
    for b in list(dm.train_dataloader()) + list(dm.test_dataloader()):
        if "label" in b:
            assert [dm.classes[i] for i in b["label"]] == [truth[int(i)] for i in b["index"]]
        for img, idx in zip(b["image"], b["index"]):
            if int(idx) not in (1, 5):  # gray / 16-bit-gray images have no class colour left
                assert class_of(img.numpy()) == SPECIES.index(truth[int(idx)]), int(idx)
    served = dm.frame_of("train")
    assert {"s001", "s002", "s004", "s005"} <= set(served["sample_id"])
    img4 = dm.cache.read_image(4)
    assert dm.cache.orig_hw[4].tolist() == [48, 64] and class_of(img4) == 0  # the EXIF turn was applied
    # a second module finds the bad files in the report without decoding anything
    dm2 = _dm(data, tmp_path, val_fraction=0, max_pixels=64 * 48 * 4)
    dm2.setup("fit")
    assert sorted(dm2.skipped["sample_id"]) == sorted(skipped["sample_id"])


def test_augmentation_is_deterministic_and_switchable(dataset, tmp_path):
    dm = _dm(dataset, tmp_path, val_fraction=0)
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    a = dm.transform_batch(raw, train=True, epoch=1, batch_idx=2)["image"]
    b = dm.transform_batch(raw, train=True, epoch=1, batch_idx=2)["image"]
    c = dm.transform_batch(raw, train=True, epoch=1, batch_idx=3)["image"]
    e = dm.transform_batch(raw, train=False)["image"]
    assert torch.equal(a, b) and not torch.allclose(a, c) and not torch.allclose(a, e)
    off = _dm(dataset, tmp_path, val_fraction=0, augment=False)
    off.setup("fit")
    assert torch.equal(off.transform_batch(raw, train=True)["image"], e)
    # the training order is a function of (seed, epoch)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    first = [i for b in loader for i in b["index"].tolist()]
    second = [i for b in loader for i in b["index"].tolist()]
    loader.sampler.set_epoch(1)
    third = [i for b in loader for i in b["index"].tolist()]
    assert first == second != third and sorted(first) == sorted(third)


def test_cpu_transform_runs_in_training_only(dataset, tmp_path):
    import albumentations as A

    dm = _dm(dataset, tmp_path, val_fraction=0, cpu_transform=A.Compose([A.InvertImg(p=1.0)]))
    dm.setup("fit")
    dm.setup("test")
    b = next(iter(dm.train_dataloader()))
    assert class_of(255 - b["image"][0].numpy()) == SPECIES.index(dm.classes[b["label"][0]])
    t = next(iter(dm.test_dataloader()))
    truth = manifest.read_manifest(dataset)["species"]
    assert class_of(t["image"][0].numpy()) == SPECIES.index(truth[int(t["index"][0])])


def test_worker_processes_only_where_a_batch_has_per_sample_cpu_work(dataset, tmp_path):
    import albumentations as A

    cached = _dm(dataset, tmp_path, num_workers=2, val_fraction=0)
    cached.setup("fit")
    assert cached.train_dataloader().num_workers == 0          # a cached batch is just reads
    transformed = _dm(dataset, tmp_path, num_workers=2, val_fraction=0,
                      cpu_transform=A.Compose([A.InvertImg(p=1.0)]))
    transformed.setup("fit")
    transformed.setup("test")
    assert transformed.train_dataloader().num_workers == 2     # albumentations per sample
    assert transformed.test_dataloader().num_workers == 0      # no cpu_transform at test time
    native = _dm(dataset, tmp_path, task="size", image_size=None, num_workers=2)
    native.setup("test")
    assert native.test_dataloader().num_workers == 2           # decoding per sample


def test_balanced_sampler_and_rank_shards():
    from minbench.data.datasets import EpochSampler

    labels = np.array([0] * 90 + [1] * 10)
    draws = []
    for epoch in range(5):
        s = EpochSampler(labels, seed=1, balanced=True)
        s.set_epoch(epoch)
        draws += list(s)
    frac = np.mean(labels[draws] == 1)
    assert 0.4 < frac < 0.6   # 10% of the rows, half of the draws
    for balanced in (False, True):
        shards = []
        for rank in range(3):
            s = EpochSampler(labels, seed=1, balanced=balanced, num_replicas=3, rank=rank)
            s.set_epoch(2)
            shards.append(list(s))
        assert len({len(x) for x in shards}) == 1 and len(shards[0]) == 34
        full = EpochSampler(labels, seed=1, balanced=balanced)
        full.set_epoch(2)
        merged = [x for trio in zip(*shards) for x in trio]
        assert merged[:100] == list(full)   # the ranks split one shared order


def test_first_occurrences_drops_ddp_padding():
    from minbench.data.datasets import first_occurrences

    idx = torch.tensor([4, 7, 1, 4, 9, 1])
    assert first_occurrences(idx).tolist() == [True, True, True, False, True, False]


class _Recorder:
    """A tiny LightningModule factory: records what each step sees."""

    @staticmethod
    def make():
        import lightning as L

        class Rec(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(3, 4)
                self.seen = []

            def training_step(self, batch, batch_idx):
                self.seen.append(batch["image"].clone())
                return self.lin(batch["image"].mean((2, 3))).sum()

            def validation_step(self, batch, batch_idx):
                assert batch["image"].shape[1] == 3

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.0)

        return Rec()


def test_lightning_fit_augments_on_the_device_deterministically(dataset, tmp_path):
    import lightning as L

    runs, seeds = [], []
    for _ in range(2):
        dm = _dm(dataset, tmp_path, val_fraction=0.2, seed=5)
        real_seed = dm.augment_seed
        dm.augment_seed = lambda epoch, batch_idx, rank=0: seeds.append((epoch, batch_idx)) or real_seed(
            epoch, batch_idx, rank)
        model = _Recorder.make()
        trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
                            default_root_dir=tmp_path)
        trainer.fit(model, datamodule=dm)
        runs.append(model.seen)
    assert len(runs[0]) == 6   # 2 epochs x 3 batches of the 20 train rows
    assert seeds[:6] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]   # validation batches draw none
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.allclose(runs[0][0], runs[0][3])     # epoch 1 differs from epoch 0


DDP_SCRIPT = textwrap.dedent('''
    import json, sys, torch, lightning as L
    from minbench.data.datamodule import MineralDataModule
    from minbench.data.datasets import first_occurrences

    class M(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)
            self.train_idx, self.test_idx, self.test_pred = [], [], []
        def training_step(self, batch, i):
            self.train_idx += batch["index"].tolist()
            return self.lin(batch["image"].mean((2, 3))).sum()
        def test_step(self, batch, i):
            # a fixed "model": class from the mean colour of the image
            self.test_idx.append(batch["index"])
            self.test_pred.append(batch["image"].mean((2, 3)).argmax(1))
        def on_test_epoch_end(self):
            idx = self.all_gather(torch.cat(self.test_idx)).flatten()
            pred = self.all_gather(torch.cat(self.test_pred)).flatten()
            keep = first_occurrences(idx)
            self.result = dict(n=int(keep.sum()), idx=sorted(idx[keep].tolist()),
                               agree=int((pred[keep] == pred[keep]).sum()), pred_sum=int(pred[keep].sum()))
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    data, cache, devices, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    dm = MineralDataModule(data, task="fewshot-10", image_size=16, batch_size=5, num_workers=0,
                           val_fraction=0, balanced=True, cache_dir=cache)
    model = M()
    kw = dict(accelerator="cpu", devices=devices, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, max_epochs=1)
    if devices > 1:
        kw["strategy"] = "ddp"
    trainer = L.Trainer(**kw)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    with open(f"{out}.{trainer.global_rank}.json", "w") as f:
        json.dump(dict(train=model.train_idx, test=model.result), f)
''')


@pytest.mark.slow
def test_ddp_two_processes_shard_and_match_single_process(dataset, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "benchmark")}
    results = {}
    for devices in (1, 2):
        out = tmp_path / f"res{devices}"
        subprocess.run([sys.executable, str(script), str(dataset), str(tmp_path / "cache"), str(devices), str(out)],
                       check=True, env=env, cwd=tmp_path, timeout=300)
        results[devices] = [json.loads(Path(f"{out}.{r}.json").read_text()) for r in range(devices)]
    single = results[1][0]
    r0, r1 = results[2]
    # training: each rank its own half of the same balanced draw
    assert len(r0["train"]) == len(r1["train"]) == 12
    merged = [x for pair in zip(r0["train"], r1["train"]) for x in pair]
    assert merged == single["train"]
    # test: after dropping the sampler's padding, the same rows and the same predictions
    assert r0["test"] == r1["test"] == single["test"]
    assert single["test"]["n"] == 12


@pytest.mark.parametrize("task", ["fewshot-10", "fewshot-98", "fewshot-360", "zeroshot", "segmentation", "size"])
def test_every_task_on_the_embedded_tiny_dataset(tiny_dataset, tmp_path, task):
    from minbench.cards import get_card

    card = get_card(task)
    dm = _dm(tiny_dataset, tmp_path, task=task, batch_size=64)
    dm.setup("test")
    b = dm.transform_batch(next(iter(dm.test_dataloader())), train=False)
    n = len(dm.test_frame)
    assert b["image"].shape == (n, 3, 32, 32) and not dm.skipped.shape[0]
    assert b["sample_id"] == dm.test_frame["sample_id"].tolist()
    assert "label" not in b   # sealed (tests/test_protocol.py checks every key and column)
    if card.kind in ("segmentation", "size"):
        assert b["orig_size"].tolist()[0] == [192, 256]
    if card.kind in ("classification", "zeroshot"):
        dm.setup("fit")
        tb = dm.transform_batch(next(iter(dm.train_dataloader())), train=True)
        assert tb["image"].shape[1:] == (3, 32, 32) and torch.isfinite(tb["image"]).all()
    else:
        with pytest.raises(UserError):
            dm.setup("fit")
