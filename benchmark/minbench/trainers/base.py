"""The small common base of every task module (torchgeo's ``BaseTask`` habit).

A task (``*Task``) is a ``LightningModule`` built from its hyperparameters alone:
``__init__`` saves them (``self.hparams``), reads the task card and then calls
``configure_models``, ``configure_losses`` and ``configure_metrics``. Metrics are the
ones the task card names (``self.card.metrics``), never re-listed here, so a task,
the scorer and the leaderboard always agree on what is measured.

Subclasses implement ``configure_models`` (and usually ``configure_losses`` /
``configure_metrics`` and the step methods). The optimiser and schedule come from the
hyperparameters ``optimizer``, ``lr``, ``weight_decay``, ``scheduler`` and
``warmup_fraction``; a training-free task sets ``trainable = False`` and gets none.

What a task needs from the data beyond its batches (the manifest, the splits, the classes,
the normalisation, the dataset's origin) comes by one route only: the data module's
``task_context()`` (a ``minbench.data.context.TaskContext``), which ``setup(stage)`` takes from
``self.trainer.datamodule`` and hands to ``configure_data(context)`` once, before the first
step of ``fit``/``validate``/``test``/``predict``. A task that needs it overrides
``configure_data``; without a ``Trainer`` (a notebook, a benchmark), call
``task.configure_data(dm.task_context())`` yourself. Tasks never reach into the data module
otherwise, and pipelines never hand a task data through other methods.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from lightning.pytorch import LightningModule

from minbench.cards import TaskCard, get_card
from minbench.data.context import TaskContext
from minbench.errors import UserError

STAGES = ("train", "val", "test")
OPTIMIZERS = ("adamw", "sgd", "adam")
SCHEDULERS = ("onecycle", "cosine", "constant")


class BaseTask(LightningModule):
    """Hyperparameters -> model, losses, metrics; optimiser and schedule from hyperparameters.

    Args:
        task: task id whose card names the metrics (``fewshot-10``, ``size`` ...).
        optimizer: ``adamw``, ``adam`` or ``sgd`` (timm's factory: no weight decay on
            norms and biases).
        lr: peak learning rate.
        weight_decay: decoupled weight decay.
        scheduler: ``onecycle`` (warm-up then cosine, per step), ``cosine`` or ``constant``.
        warmup_fraction: share of the steps spent warming up (``onecycle``).
        ignore: constructor arguments not to store as hyperparameters.
    """

    #: False for training-free tasks (no optimiser, one pass over the training data).
    trainable: bool = True

    def __init__(self, task: str, *, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 0.05, scheduler: str = "onecycle", warmup_fraction: float = 0.1,
                 ignore: Sequence[str] = ()) -> None:
        super().__init__()
        # Collects the arguments of the subclass's __init__ too (Lightning walks the frames).
        self.save_hyperparameters(ignore=["ignore", *ignore])
        if optimizer not in OPTIMIZERS:
            raise UserError(f"model.init_args.optimizer: {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if scheduler not in SCHEDULERS:
            raise UserError(f"model.init_args.scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        self.card: TaskCard = get_card(task)
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    # --- what subclasses configure -------------------------------------------------------
    def configure_models(self) -> None:
        """Build ``self.model`` (and whatever else) from ``self.hparams``."""
        raise NotImplementedError(f"{type(self).__name__} must implement configure_models")

    def configure_losses(self) -> None:
        """Build the loss modules from ``self.hparams`` (none by default)."""

    def configure_metrics(self) -> None:
        """Build per-stage metric collections (``self.stage_metrics``); none by default."""
        self.stage_metrics = torch.nn.ModuleDict()

    def set_stage_metrics(self, collection) -> None:
        """Use one ``MetricCollection`` (keys = the card's metric names) for every stage,
        each stage with its own state and the ``<stage>/`` prefix."""
        # ModuleDict keys may not shadow Module attributes such as ``train``: hence "_metrics".
        self.stage_metrics = torch.nn.ModuleDict(
            {f"{stage}_metrics": collection.clone(prefix=f"{stage}/") for stage in STAGES})

    def metrics_for(self, stage: str):
        """The ``MetricCollection`` of ``stage`` (``train``, ``val`` or ``test``)."""
        return self.stage_metrics[f"{stage}_metrics"]

    def log_stage_metrics(self, stage: str, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Update the ``stage`` metrics and log them (epoch-level; synced across ranks)."""
        metrics = self.metrics_for(stage)
        metrics.update(preds, target)
        # Logging the collection lets Lightning compute/reset it at epoch end and sync
        # the states across DDP ranks (torchmetrics' own reduction, not a mean of means).
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=int(target.shape[0]))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    # --- the one route from data to model ---------------------------------------------------
    #: the ``TaskContext`` last given to ``configure_data`` (None before)
    context: TaskContext | None = None

    def setup(self, stage: str) -> None:
        """Take the data module's ``task_context()`` and configure the task with it (once per context)."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        task_context = getattr(dm, "task_context", None)
        if task_context is None:
            return
        context = task_context()
        if context is not self.context:
            self.configure_data(context)
            self.context = context

    def configure_data(self, context: TaskContext) -> None:
        """Read what the task needs from the data (classes, rows, texts ...); nothing by default.
        Overrides call ``super().configure_data(context)`` first."""
        self.context = context

    # --- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        if not self.trainable:
            return None
        from timm.optim import create_optimizer_v2

        hp = self.hparams
        kwargs = {"momentum": 0.9, "nesterov": True} if hp.optimizer == "sgd" else {}
        opt = create_optimizer_v2(self, opt=hp.optimizer, lr=hp.lr, weight_decay=hp.weight_decay, **kwargs)
        if hp.scheduler == "constant":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if hp.scheduler == "onecycle" and total >= 4:
            # OneCycleLR divides by (warm-up steps - 1): keep at least two warm-up steps.
            pct_start = min(max(hp.warmup_fraction, 2.0 / total), 0.5)
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=hp.lr, total_steps=total, pct_start=pct_start,
                anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e3)
        else:  # cosine, and runs too short for a one-cycle warm-up
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A run resumed with more (or fewer) epochs keeps the schedule's shape: stretch the
        stored schedule to the new number of steps instead of failing past its end."""
        schedulers = checkpoint.get("lr_schedulers") or []
        if not schedulers or not self.trainable or self._trainer is None:
            return
        try:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
        except Exception:  # no training data attached (e.g. loading to predict)
            return
        for state in schedulers:
            if "total_steps" in state:
                state["total_steps"] = max(total, int(state.get("last_epoch", 0)) + 1)
            elif "T_max" in state:
                state["T_max"] = total
