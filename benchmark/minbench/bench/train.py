"""``minbench bench train``: is the data path fast enough to keep the model busy?

Times training steps (forward, backward, optimiser) of a recipe's model on the device,
fed (a) by the data module (warm decoded-image cache, batched augmentation on the
device) and (b) by random tensors already on the device, and (c) the
data path alone (no model). (a) close to (b), and (c) well above (b), mean the loader is
not the bottleneck. Images/s for each, their ratios, and the setting.
"""

from __future__ import annotations

import time
from pathlib import Path


def _batches(loader):
    while True:  # the train split may hold fewer batches than the steps timed
        yield from loader


def bench_train(*, data: Path | None = None, task: str = "fewshot-10", recipe: str | None = None, steps: int = 30,
                warmup: int = 3, batch_size: int | None = None, workers: int | None = None) -> dict:
    """Training images/s of ``recipe`` (default: the few-shot default recipe) on ``task``'s
    train split: fed by the data module, by synthetic tensors on the device, and the data
    path alone; ``steps`` timed steps after ``warmup`` untimed ones. The result as a dict."""
    import torch

    from minbench.cards import get_card
    from minbench.errors import UserError
    from minbench.pipelines.kinds import default_recipe
    from minbench.recipes import load_recipe, recipe_path

    card = get_card(task)
    if card.kind != "classification":
        raise UserError(f"--task {task}: bench train times the classification trainer")
    config = load_recipe(recipe_path(recipe or default_recipe("classification")))
    data_args = dict(config["data"]["init_args"])
    if batch_size:
        data_args["batch_size"] = batch_size
    if workers is not None:
        data_args["num_workers"] = workers
    dm, model = _build(config, data_args, card.id, data)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    timer = _StepTimer(model, dm, device, warmup=warmup, steps=steps,
                       augment=bool(data_args.get("augment", True)))
    size, bs = int(data_args["image_size"]), int(data_args["batch_size"])
    loader = dm.train_dataloader()
    # One pass first: builds the decoded-image cache if needed and starts the workers.
    for _ in loader:
        pass
    fed = timer.from_loader(loader, train_model=True)
    synth = timer.synthetic(bs, size)
    data_only = timer.from_loader(loader, train_model=False)
    return {
        "benchmark": "train",
        "task": card.id,
        "recipe": config["name"],
        "backbone": config["model"]["init_args"].get("backbone"),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "image_size": size,
        "batch_size": bs,
        # worker processes the loader really ran (none for cached batches; see loader_workers)
        "num_workers": dm.loader_workers(loader.dataset),
        "steps": steps,
        "train_images": len(dm.positions["train"]) if hasattr(dm, "positions") else None,
        "images_per_s": {"data_module": round(fed, 1), "synthetic": round(synth, 1),
                         "data_path_only": round(data_only, 1)},
        "data_module_vs_synthetic": round(fed / synth, 3),
        "data_path_headroom": round(data_only / synth, 2),
    }


def _build(config: dict, data_args: dict, task: str, data: Path | None):
    """The recipe's data module (set up for fit) and model, on ``data`` (default: the embedded one)."""
    from minbench.data.locate import resolve_dataset
    from minbench.recipes import instantiate
    from minbench.trainers.base import BaseTask

    data_dir = resolve_dataset(data)
    dm = instantiate({**config["data"], "init_args": data_args}, "data", object, data_dir=data_dir,
                     task=task, seed=0)
    dm.setup("fit")
    model = instantiate(config["model"], "model", BaseTask, task=task, num_classes=dm.num_classes,
                        classes=list(dm.classes))
    return dm, model


class _StepTimer:
    """Times training steps (forward, backward, AdamW) of one model on one device."""

    def __init__(self, model, dm, device, *, warmup: int, steps: int, augment: bool):
        import torch

        self.model, self.dm, self.device = model, dm, device
        self.warmup, self.steps, self.augment = warmup, steps, augment
        self.opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def step(self, images, labels) -> None:
        loss = self.loss_fn(self.model(images), labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def from_loader(self, loader, train_model: bool) -> float:
        """Images/s of batches from ``loader`` moved and augmented on the device (and, with
        ``train_model``, trained on)."""
        import torch

        it = _batches(loader)
        images = 0
        for i in range(self.warmup + self.steps):
            if i == self.warmup:
                self.sync()
                start, images = time.perf_counter(), 0
            batch = next(it)
            batch = {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v)
                     for k, v in batch.items()}
            batch = self.dm.transform_batch(batch, train=self.augment, epoch=0, batch_idx=i)
            if train_model:
                self.step(batch["image"], batch["label"])
            images += int(batch["image"].shape[0])
        self.sync()
        return images / (time.perf_counter() - start)

    def synthetic(self, bs: int, size: int) -> float:
        """Images/s of training on one random batch already on the device."""
        import torch

        g = torch.Generator(device="cpu").manual_seed(0)
        images = torch.randn(bs, 3, size, size, generator=g).to(self.device)
        labels = torch.randint(0, self.dm.num_classes, (bs,), generator=g).to(self.device)
        for i in range(self.warmup + self.steps):
            if i == self.warmup:
                self.sync()
                start = time.perf_counter()
            self.step(images, labels)
        self.sync()
        return bs * self.steps / (time.perf_counter() - start)
