"""Lightning pieces every trained pipeline shares: the data module and Trainer built from a
recipe, the checkpoint/progress/throughput callbacks, the CSV or wandb logger, and the
gathering of predictions across DDP ranks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningDataModule, Trainer

from minbench.errors import UserError
from minbench.pipelines.config import instantiate
from minbench.pipelines.runner import SeedContext

CHECKPOINT_DIR = "checkpoints"


def build_datamodule(ctx: SeedContext, **overrides: Any) -> LightningDataModule:
    """The recipe's data module for this task, dataset and seed."""
    extra = {"task": ctx.card.id, "seed": ctx.seed, **overrides}
    return instantiate(ctx.config["data"], "data", LightningDataModule, data_dir=ctx.data_dir, **extra)


class Throughput(Callback):
    """Training images/s per epoch: from the epoch's start to its last training batch, so
    data loading and the step count but validation does not. Summed over DDP ranks.
    Not kept in checkpoints: a resumed run reports the epochs it ran itself."""

    def __init__(self) -> None:
        self.per_epoch: list[float] = []
        self._start = self._last = 0.0
        self._images = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.perf_counter()
        self._images = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += int(batch["image"].shape[0]) if isinstance(batch, dict) and "image" in batch else 0
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        elapsed = self._last - self._start
        if self._images and elapsed > 0:
            rate = self._images * trainer.world_size / elapsed
            self.per_epoch.append(rate)
            pl_module.log("train/images_per_s", rate, rank_zero_only=True)


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb

        return bool(wandb.api.api_key)
    except Exception:  # no netrc, no settings: not logged in
        return False


def build_loggers(ctx: SeedContext) -> list:
    """CSV logs always (``logs/version_N/metrics.csv``: the training curves are drawn from
    them); wandb too with ``logger: wandb`` (offline unless logged in)."""
    from lightning.pytorch.loggers import CSVLogger

    kind = ctx.config.get("logger", "csv")
    if kind not in ("csv", "wandb"):
        raise UserError(f"logger: {kind!r} is not one of csv, wandb")
    loggers = [CSVLogger(save_dir=str(ctx.dir), name="logs")]
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        offline = os.environ.get("WANDB_MODE") in ("offline", "disabled") or not _wandb_logged_in()
        loggers.append(WandbLogger(project="minbench", name=f"{ctx.card.id}-{ctx.recipe_name}-seed{ctx.seed}",
                                   save_dir=str(ctx.dir), offline=offline,
                                   group=f"{ctx.card.id}-{ctx.recipe_name}", config=ctx.config))
    return loggers


def build_trainer(ctx: SeedContext, *, monitor: str | None, mode: str = "max",
                  callbacks: list[Callback] | None = None) -> Trainer:
    """The recipe's ``trainer`` section plus minbench's callbacks, logger and run folder.

    Checkpoints: ``checkpoints/last.ckpt`` every epoch (what ``--resume`` continues from)
    and, with a ``monitor``, ``checkpoints/best.ckpt`` (``trainer.checkpoint_callback``).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    kwargs = dict(ctx.config.get("trainer") or {})
    kwargs.setdefault("deterministic", True)
    kwargs.setdefault("log_every_n_steps", 10)
    # Both saved at the end of the training epoch (validation has run by then), so --resume
    # starts cleanly at the next epoch. "last" is its own callback: Lightning's save_last
    # only writes when the monitored checkpoint improved.
    folder = str(ctx.dir / CHECKPOINT_DIR)
    last = ModelCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False, save_on_train_epoch_end=True)
    cbs: list[Callback] = [last]
    if monitor is not None:  # first, so that trainer.checkpoint_callback is the best one
        cbs.insert(0, ModelCheckpoint(dirpath=folder, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                                      enable_version_counter=False, save_on_train_epoch_end=True))
    cbs += [Throughput(), *(callbacks or [])]
    show_bar = not ctx.quiet and kwargs.get("enable_progress_bar", True)
    if show_bar:
        cbs.append(RichProgressBar(leave=True))
    kwargs["enable_progress_bar"] = bool(show_bar)
    kwargs["enable_model_summary"] = kwargs.get("enable_model_summary", not ctx.quiet)
    try:
        return Trainer(default_root_dir=str(ctx.dir), logger=build_loggers(ctx), callbacks=cbs, **kwargs)
    except TypeError as exc:
        raise UserError(f"trainer: {exc}") from None


def find_callback(trainer: Trainer, cls: type):
    return next((cb for cb in trainer.callbacks if isinstance(cb, cls)), None)


def last_checkpoint(ctx: SeedContext) -> Path | None:
    path = ctx.dir / CHECKPOINT_DIR / "last.ckpt"
    return path if path.is_file() else None
