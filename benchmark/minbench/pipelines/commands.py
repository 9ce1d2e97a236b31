"""``minbench run``: train/evaluate a task end to end, write the submission, score it.

The verb is a dispatcher by the task card's kind: ``pipelines/<kind>.py`` does the
work for one seed (see ``pipelines/runner.py`` for the contract); this file only
declares the arguments, and heavy imports wait until the command runs.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from minbench.cards import task_ids

    p = sub.add_parser(
        "run", help="train/evaluate a task end to end and score it",
        description="Train on the task's train split (or run a training-free method), predict the "
                    "test split, write the submission, score it with `minbench score`'s scorer and "
                    "add a leaderboard entry. Without --config the task kind's default recipe runs.")
    p.add_argument("--task", default=None,
                   help=f"task id ({', '.join(task_ids())}); default: the recipe's task")
    p.add_argument("--data", type=Path, default=None, help="prepared dataset folder (default: the embedded one)")
    p.add_argument("--config", default=None,
                   help="recipe YAML, a path or the name of one in baselines/ (default: the kind's default)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<task>/<recipe>)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed")
    seeds.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds: mean ± std")
    p.add_argument("--max-epochs", type=int, default=None, help="override trainer.max_epochs")
    p.add_argument("--weights", type=Path, default=None,
                   help="local pretrained weights for the backbone (a timm/PyTorch state dict, "
                        ".safetensors, or a minbench run's .ckpt)")
    p.add_argument("--cam", default=None,
                   help="segmentation: CAM method (gradcam, gradcam++, hirescam, layercam, xgradcam, "
                        "eigencam, eigengradcam, scorecam); default: the recipe's")
    p.add_argument("--classifier", type=Path, default=None,
                   help="segmentation: classifier checkpoint whose CAMs make the masks (default: a "
                        "finished few-shot run on the same data, else the default recipe is trained)")
    p.add_argument("--logger", choices=("csv", "wandb"), default=None, help="metrics logger (default: csv)")
    p.add_argument("--devices", default=None, help="override trainer.devices (e.g. 2)")
    p.add_argument("--accelerator", default=None, help="override trainer.accelerator (cpu, gpu, auto)")
    p.add_argument("--strategy", default=None, help="override trainer.strategy (e.g. ddp)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe value, e.g. --set data.init_args.image_size=96 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--no-leaderboard", dest="leaderboard", action="store_false",
                   help="do not add the result to the task's leaderboard")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--leaderboard-dir", type=Path, default=None,
                   help="boards folder for the entry (default: $MINBENCH_LEADERBOARDS, else $MINBENCH_HOME/leaderboards; "
                        "`--leaderboard-dir leaderboards` updates the shipped boards of a checkout)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import os

    from minbench.pipelines.runner import run_command

    if getattr(args, "leaderboard_dir", None):  # through the environment: DDP worker processes inherit it
        os.environ["MINBENCH_LEADERBOARDS"] = str(Path(args.leaderboard_dir).resolve())

    run_command(args)
    return 0
