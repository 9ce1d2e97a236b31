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

from minbench.bench import add_json_argument, report


def register(sub) -> None:
    p = sub.add_parser("train", help="training images/s: fed by the data module vs synthetic tensors")
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded one)")
    p.add_argument("--task", default="fewshot-10", help="classification task whose train split feeds the model")
    p.add_argument("--config", default=None, help="recipe (default: the few-shot default recipe)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    p.add_argument("--workers", type=int, default=None, help="override the recipe's DataLoader workers")
    add_json_argument(p)
    p.set_defaults(func=_bench)


def _bench(args) -> int:
    return report(bench_train(args), args.json)


def _batches(loader):
    while True:  # the train split may hold fewer batches than the steps timed
        yield from loader


def bench_train(args) -> dict:
    import torch

    from minbench.cards import get_card
    from minbench.data.locate import resolve_dataset
    from minbench.errors import UserError
    from minbench.pipelines.classification import DEFAULT_RECIPE
    from minbench.recipes import instantiate, load_recipe, recipe_path
    from minbench.trainers.base import BaseTask

    card = get_card(args.task)
    if card.kind != "classification":
        raise UserError(f"--task {args.task}: bench train times the classification trainer")
    config = load_recipe(recipe_path(args.config or DEFAULT_RECIPE))
    data_args = dict(config["data"]["init_args"])
    if args.batch_size:
        data_args["batch_size"] = args.batch_size
    if args.workers is not None:
        data_args["num_workers"] = args.workers
    data_dir = resolve_dataset(args.data)
    dm = instantiate({**config["data"], "init_args": data_args}, "data", object, data_dir=data_dir,
                     task=card.id, seed=0)
    dm.setup("fit")
    model = instantiate(config["model"], "model", BaseTask, task=card.id, num_classes=dm.num_classes,
                        classes=list(dm.classes))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    size, bs = int(data_args["image_size"]), int(data_args["batch_size"])

    def step(images, labels):
        loss = loss_fn(model(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    loader = dm.train_dataloader()
    # One pass first: builds the decoded-image cache if needed and starts the workers.
    for _ in loader:
        pass

    def from_loader(train_model: bool) -> float:
        it = _batches(loader)
        images = 0
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                sync()
                start, images = time.perf_counter(), 0
            batch = next(it)
            batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            batch = dm.transform_batch(batch, train=bool(data_args.get("augment", True)), epoch=0, batch_idx=i)
            if train_model:
                step(batch["image"], batch["label"])
            images += int(batch["image"].shape[0])
        sync()
        return images / (time.perf_counter() - start)

    def synthetic() -> float:
        g = torch.Generator(device="cpu").manual_seed(0)
        images = torch.randn(bs, 3, size, size, generator=g).to(device)
        labels = torch.randint(0, dm.num_classes, (bs,), generator=g).to(device)
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                sync()
                start = time.perf_counter()
            step(images, labels)
        sync()
        return bs * args.steps / (time.perf_counter() - start)

    fed = from_loader(train_model=True)
    synth = synthetic()
    data_only = from_loader(train_model=False)
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
        "steps": args.steps,
        "train_images": len(dm.positions["train"]) if hasattr(dm, "positions") else None,
        "images_per_s": {"data_module": round(fed, 1), "synthetic": round(synth, 1),
                         "data_path_only": round(data_only, 1)},
        "data_module_vs_synthetic": round(fed / synth, 3),
        "data_path_headroom": round(data_only / synth, 2),
    }
