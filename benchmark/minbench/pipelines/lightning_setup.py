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
from minbench.recipes import instantiate
from minbench.pipelines.context import SeedContext

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


class PhaseProgress(Callback):
    """One progress line per phase (training, validation, prediction) through
    ``minbench.console``: live on a terminal; in a log file one plain line per quarter of the
    epochs (loss and the monitored metric) and one when a phase ends."""

    TRAIN_MARKS = 4

    def __init__(self, label: str, monitor: str | None = None) -> None:
        self.label, self.monitor = label, monitor
        self._phase = None

    def _fields(self, trainer) -> str:
        metrics = trainer.callback_metrics
        out = []
        loss = next((k for k in ("train/loss_epoch", "train/loss") if k in metrics), None)
        if loss:
            out.append(f"loss {float(metrics[loss]):.3f}")
        if self.monitor and self.monitor in metrics:
            out.append(f"{self.monitor} {float(metrics[self.monitor]):.3f}")
        return " · ".join(out)

    def _start(self, what: str, total) -> None:
        from minbench.console import progress

        self._close()
        marks = self.TRAIN_MARKS if what == "train" else 0
        unit = "epochs" if what == "train" else "batches"
        self._phase = progress(f"{what} {self.label}", total, marks=marks, unit=unit)

    def _close(self) -> None:
        if self._phase is not None:
            self._phase.close()
            self._phase = None

    @staticmethod
    def _batches(value) -> float:
        values = value if isinstance(value, (list, tuple)) else [value]
        total = sum(v for v in values if isinstance(v, (int, float)) and v != float("inf"))
        return total or None

    # training: progress in epochs (fractional within an epoch on a terminal)
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            self._start("train", total)
            if self._phase is not None:
                self._phase.update(trainer.current_epoch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._phase is not None and trainer.is_global_zero:
            from minbench.console import is_terminal

            n = self._batches(trainer.num_training_batches)
            if is_terminal() and n:
                self._phase.update(trainer.current_epoch + min(1.0, (batch_idx + 1) / n))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._phase is not None and trainer.is_global_zero:
            self._phase.update(trainer.current_epoch + 1, self._fields(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        self._close()

    # evaluation passes outside training
    @staticmethod
    def _fitting(trainer) -> bool:
        return str(getattr(trainer.state.fn, "value", trainer.state.fn)) == "fit"

    def _eval_start(self, trainer, what: str, batches) -> None:
        if trainer.is_global_zero and not self._fitting(trainer):
            self._start(what, self._batches(batches))

    def _eval_batch_end(self, trainer) -> None:
        if self._phase is not None and trainer.is_global_zero and not self._fitting(trainer):
            self._phase.advance()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._eval_start(trainer, "validate", trainer.num_val_batches)

    def on_validation_batch_end(self, trainer, *args, **kwargs) -> None:
        self._eval_batch_end(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._fitting(trainer):
            self._close()

    def on_test_start(self, trainer, pl_module) -> None:
        self._eval_start(trainer, "test", trainer.num_test_batches)

    def on_test_batch_end(self, trainer, *args, **kwargs) -> None:
        self._eval_batch_end(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self._close()

    def on_predict_start(self, trainer, pl_module) -> None:
        self._eval_start(trainer, "predict", trainer.num_predict_batches)

    def on_predict_batch_end(self, trainer, *args, **kwargs) -> None:
        self._eval_batch_end(trainer)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close()


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
    from minbench.console import QUIET, VERBOSE, silence_frameworks, verbosity

    level = QUIET if ctx.quiet else verbosity()
    if level != VERBOSE:
        silence_frameworks()  # again: importing Lightning resets its loggers to INFO
    wants_bar = kwargs.pop("enable_progress_bar", True) is not False
    kwargs["enable_progress_bar"] = level == VERBOSE and wants_bar
    if kwargs["enable_progress_bar"]:
        cbs.append(RichProgressBar(leave=True))
    elif level != QUIET and wants_bar:
        # Lightning's own bar leaves one finished line per epoch with wrapped metric columns;
        # PhaseProgress keeps one line per phase (and a few plain lines in a log file).
        cbs.append(PhaseProgress(f"{ctx.card.id} seed {ctx.seed}", monitor=monitor))
    kwargs.setdefault("enable_model_summary", level == VERBOSE)
    try:
        return Trainer(default_root_dir=str(ctx.dir), logger=build_loggers(ctx), callbacks=cbs, **kwargs)
    except TypeError as exc:
        raise UserError(f"trainer: {exc}") from None


def find_callback(trainer: Trainer, cls: type):
    return next((cb for cb in trainer.callbacks if isinstance(cb, cls)), None)


def last_checkpoint(ctx: SeedContext) -> Path | None:
    path = ctx.dir / CHECKPOINT_DIR / "last.ckpt"
    return path if path.is_file() else None
