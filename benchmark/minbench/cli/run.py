"""``minbench run``: train/evaluate a task end to end, write the submission, score it.

This file declares the arguments and turns them into a ``pipelines.resolve.RunRequest``;
``pipelines/runner.py`` does the run (a task kind's seed function per seed), and heavy
imports wait until the command runs. The choices the help lists come from the registries
(task cards, ``baselines/``, the CAM registry).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import fields
from pathlib import Path

from minbench.cli.common import add_verbosity_flags


def register(sub) -> None:
    from minbench.cards import all_cards
    from minbench.models import cam as cams, cam_layers, masking
    from minbench.models.refine import REFINEMENTS
    from minbench.recipes import shipped_recipes

    tasks = ", ".join(all_cards())
    p = sub.add_parser(
        "run", help="train/evaluate a task end to end and score it",
        description="Train on the task's train split (or run a training-free method), predict the "
                    "test split, write the submission, score it with `minbench score`'s scorer and "
                    "add a leaderboard entry. Without --config the task kind's default recipe runs. "
                    "Every argument and recipe value is checked before any data is built.")
    p.add_argument("--task", default=None, help=f"task id ({tasks}); default: the recipe's task")
    p.add_argument("--data", type=Path, default=None, help="prepared dataset folder (default: the embedded one)")
    p.add_argument("--config", default=None,
                   help=f"recipe YAML, a path or a shipped recipe name ({', '.join(shipped_recipes())}); "
                        "default: the task kind's default (`minbench list recipes`)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<task>/<recipe>)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed")
    seeds.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds: mean ± std")
    p.add_argument("--max-epochs", type=int, default=None, help="override trainer.max_epochs")
    p.add_argument("--weights", type=Path, default=None,
                   help="local pretrained weights for the backbone (a timm/PyTorch state dict, .safetensors, "
                        "or a minbench run's .ckpt); segmentation: for the backbone of the default classifier "
                        "it trains; not for size")
    cam = p.add_argument_group("segmentation (the CAM that makes the masks)")
    cam.add_argument("--cam", default=None, help=f"CAM method ({', '.join(cams.METHODS)}); default: the recipe's")
    cam.add_argument("--classifier", type=Path, default=None,
                     help="classifier checkpoint whose CAMs make the masks (default: a finished few-shot run "
                          "on the same data, else the default recipe is trained)")
    cam.add_argument("--cam-target", default=None,
                     help=f"which class the CAM explains ({', '.join(t for t in cams.TARGETS if t != 'true')}; "
                          "'true' would read the test label and is refused)")
    cam.add_argument("--top-k", type=int, default=None, help="k of --cam-target topk")
    cam.add_argument("--target-layer", default=None, help="module name(s), comma separated (default: the family's)")
    cam.add_argument("--reshape", default=None, help=f"feature-map reshape ({', '.join(cam_layers.RESHAPES)})")
    cam.add_argument("--threshold", default=None, help=f"CAM -> mask rule ({', '.join(masking.THRESHOLDS)})")
    cam.add_argument("--threshold-value", type=float, default=None,
                     help="level of --threshold fixed (0-1) or percentile (0-100)")
    cam.add_argument("--refine", default=None,
                     help=f"refine the CAM by the photo before the threshold ({', '.join(REFINEMENTS)})")
    cam.add_argument("--upsample", default=None, help=f"CAM -> photo resolution ({', '.join(masking.UPSAMPLING)})")
    cam.add_argument("--cam-scale", type=float, default=None,
                     help="the CAM reads the photo at this multiple of the classifier's input size (recipes: 2)")
    cam.add_argument("--tta", default=None, help=f"CAM test-time averaging ({', '.join(cams.TTA)})")
    p.add_argument("--logger", default=None, help="metrics logger: csv or wandb (default: csv)")
    hw = p.add_argument_group("hardware (see README: multi-GPU and multi-node)")
    hw.add_argument("--devices", default=None, help="override trainer.devices (e.g. 2, auto)")
    hw.add_argument("--accelerator", default=None, help="override trainer.accelerator (cpu, gpu, auto)")
    hw.add_argument("--strategy", default=None, help="override trainer.strategy (e.g. ddp)")
    hw.add_argument("--num-nodes", type=int, default=None, help="override trainer.num_nodes (multi-node DDP)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe value, e.g. --set data.init_args.image_size=96 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last checkpoint (hardware and logger flags may "
                        "change; any other flag must match the stored run)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--no-leaderboard", dest="leaderboard", action="store_false",
                   help="do not add the result to the task's leaderboard")
    p.add_argument("--leaderboard-dir", type=Path, default=None,
                   help="boards folder for the entry (default: $MINBENCH_LEADERBOARDS, else $MINBENCH_HOME/leaderboards; "
                        "`--leaderboard-dir leaderboards` updates the shipped boards of a checkout)")
    add_verbosity_flags(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    import os

    from minbench.pipelines.runner import run

    if getattr(args, "leaderboard_dir", None):  # through the environment: DDP worker processes inherit it
        os.environ["MINBENCH_LEADERBOARDS"] = str(Path(args.leaderboard_dir).resolve())

    run(request(args))
    return 0


def request(args):
    """The parsed arguments as a ``RunRequest`` (plain values; the command line as typed)."""
    from minbench.pipelines.resolve import RunRequest

    values = {f.name: getattr(args, f.name) for f in fields(RunRequest) if hasattr(args, f.name)}
    values["command"] = " ".join(shlex.quote(a) for a in ["minbench", *sys.argv[1:]])
    return RunRequest(**values)
