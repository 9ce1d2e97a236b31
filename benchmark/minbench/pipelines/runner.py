"""What ``minbench run`` does for every task kind: resolve the recipe, prepare the run
folder, loop over seeds, summarise. The kind-specific work is in ``pipelines/<kind>.py``.

``run_recipe(card, config, data_dir, out, seeds)`` is the public entry point: ``run_command``
(``minbench run``) resolves its arguments into it, and a pipeline that needs another run
calls it (the segmentation task trains its default classifier so).

Contract of a kind module (``classification.py``, ``segmentation.py``, ``size.py``,
``zeroshot.py``)::

    DEFAULT_RECIPE: str                      # stem of the default recipe in baselines/
    def run_seed(ctx: SeedContext) -> dict | None
        # train/predict/score one seed into ctx.dir; return {"metrics": {...}, ...extras}
        # on global rank 0 (None on the other DDP ranks). Use ctx.score() to score the
        # written submission and add the leaderboard entry, so every kind scores alike;
        # every number reported comes from its ScoreResult (or another scoring/ function).

The runner marks each seed ``running``/``finished`` in ``seed<N>/status.json`` (with the
returned dict) and writes ``summary.json`` (mean ± std per metric) when all are done.
"""

from __future__ import annotations

import copy
import importlib
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minbench._version import __version__
from minbench.cards import TaskCard, get_card
from minbench.errors import UserError
from minbench.recipes import apply_override, flatten, load_recipe, recipe_path, shipped_recipes
from minbench.dist import is_rank_zero
from minbench.pipelines.run_folder import RunFolder, jsonable

DEFAULT_RECIPE_BY_KIND: dict[str, str] = {}  # filled from each kind module's DEFAULT_RECIPE


@dataclass
class SeedContext:
    """Everything a kind's ``run_seed`` needs for one seed."""

    card: TaskCard
    config: dict[str, Any]          # the resolved recipe (see config.yaml of the run)
    data_dir: Path
    seed: int
    dir: Path                       # this seed's folder
    folder: RunFolder
    resume: bool = False
    leaderboard: bool = True
    quiet: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe_name(self) -> str:
        return str(self.config.get("name", "run"))

    def score(self, predictions: Path, *, name: str | None = None, method: str | None = None,
              resolved: dict | None = None):
        """Score ``predictions`` with the scorer, write ``score.json`` and add the
        leaderboard entry ``name`` (default: the recipe's name) described by ``method``
        (default: the recipe's description) in the recipe's ``role`` (``method`` or
        ``reference``), unless ``--no-leaderboard``. ``resolved``: what the run found for
        values its recipe left open (``config.RESOLVED_KEY``), part of the entry's identity.

        Returns the full ``minbench.scoring.score.ScoreResult`` (metrics, intervals,
        per-sample rows): report from it, never from a second computation.
        """
        from minbench.scoring.score import score_submission, write_score_json

        name = self.recipe_name if name is None else name
        method = str(self.config.get("description") or name) if method is None else method
        result = score_submission(self.card.id, Path(predictions), self.data_dir)
        write_score_json(result, self.dir / "score.json")
        if self.leaderboard:
            from minbench.recipes import RESOLVED_KEY
            from minbench.scoring.leaderboard import add_entry

            config = jsonable({**self.config, **({RESOLVED_KEY: resolved} if resolved else {})})
            path = add_entry(self.card.id, result, name=name, method=method, source="run",
                             config=config, seed=self.seed, data_dir=self.data_dir,
                             role=self.config.get("role"))
            self.extras["leaderboard"] = str(path)
        return result


def kind_module(kind: str):
    """The pipeline module of a task kind; a ``UserError`` when there is none yet."""
    try:
        return importlib.import_module(f"minbench.pipelines.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name == f"minbench.pipelines.{kind}":
            raise UserError(f"`minbench run` has no pipeline for {kind} tasks in this version") from None
        raise


def resolve_config(args, origins: dict[str, str] | None = None) -> tuple[dict[str, Any], TaskCard]:
    """Recipe + command-line overrides -> the resolved, checked config and the task card.

    ``origins`` (filled in when given) maps each dotted key the command line set to the
    flag that set it, so a mistake names the flag. Nothing slow happens here: every key
    is checked against its target's signature (``pipelines/validate.py``) before the
    caller builds any data.
    """
    if args.config is None:
        if args.task is None:
            raise UserError("--task is required when no --config is given")
        card = get_card(args.task)
        default = getattr(kind_module(card.kind), "DEFAULT_RECIPE", None)
        recipes = shipped_recipes()
        if default not in recipes:
            raise UserError(f"no default recipe for {card.kind} tasks (baselines/{default}.yaml missing)")
        path = recipes[default]
    else:
        path = recipe_path(args.config)
    config = load_recipe(path)
    task = args.task or config.get("task")
    if task is None:
        raise UserError(f"{path}: names no task; pass --task")
    card = get_card(task)
    recipe_task = config.get("task")
    if recipe_task is not None and get_card(recipe_task).kind != card.kind:
        raise UserError(f"--config {path}: a recipe for {get_card(recipe_task).kind} tasks "
                        f"cannot run --task {task} ({card.kind})")
    config["task"] = task
    config["recipe"] = str(path)
    origins = {} if origins is None else origins
    if args.seed is not None:
        config["seeds"] = [args.seed]
        origins["seeds"] = f"--seed {args.seed}"
    elif args.seeds is not None:
        config["seeds"] = list(dict.fromkeys(args.seeds))
        origins["seeds"] = "--seeds " + " ".join(map(str, args.seeds))
    config["seeds"] = config.get("seeds") or [0]
    _apply_run_overrides(config, args, origins)
    from minbench.pipelines.validate import validate_run

    validate_run(config, card, origins, kind_module(card.kind))
    config["seeds"] = [int(s) for s in config["seeds"]]
    return config, card


#: ``--flag`` -> trainer key
HARDWARE_FLAGS = {"devices": "devices", "accelerator": "accelerator", "strategy": "strategy",
                  "num_nodes": "num_nodes"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _apply_run_overrides(config: dict[str, Any], args, origins: dict[str, str] | None = None) -> None:
    """The command line's flags and ``--set`` values into ``config`` (in place);
    ``origins`` records which flag set which dotted key."""
    from minbench.pipelines.commands import CAM_FLAGS

    origins = {} if origins is None else origins
    kind = get_card(config["task"]).kind
    trainer = config.setdefault("trainer", {})
    model_args = config["model"].setdefault("init_args", {})
    if getattr(args, "max_epochs", None) is not None:
        trainer["max_epochs"] = args.max_epochs
        origins["trainer.max_epochs"] = f"--max-epochs {args.max_epochs}"
    for name, key in HARDWARE_FLAGS.items():
        value = getattr(args, name, None)
        if value is not None:
            trainer[key] = int(value) if str(value).isdigit() else value
            origins[f"trainer.{key}"] = f"{_flag(name)} {value}"
    if getattr(args, "weights", None) is not None:
        weights = Path(args.weights).expanduser()
        if not weights.is_file():
            raise UserError(f"--weights {weights}: no such file")
        if kind == "segmentation":  # for the backbone of the default classifier it trains
            config["classifier_weights"] = str(weights.resolve())
            origins["classifier_weights"] = f"--weights {args.weights}"
        else:
            model_args["weights"] = str(weights.resolve())
            origins["model.init_args.weights"] = f"--weights {args.weights}"
    for name, key in {**CAM_FLAGS, "classifier": "classifier"}.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if kind != "segmentation":
            raise UserError(f"{_flag(name)} applies to the segmentation task only")
        if name == "classifier":
            path = Path(value).expanduser()
            if not path.is_file():
                raise UserError(f"--classifier {path}: no such checkpoint file")
            value = str(path.resolve())
        model_args[key] = value
        origins[f"model.init_args.{key}"] = f"{_flag(name)} {getattr(args, name)}"
    if getattr(args, "logger", None) is not None:
        config["logger"] = args.logger
        origins["logger"] = f"--logger {args.logger}"
    config.setdefault("logger", "csv")
    for assignment in getattr(args, "overrides", None) or []:
        apply_override(config, assignment)
        origins[assignment.split("=", 1)[0].strip()] = f"--set {assignment}"


#: keys --resume may change: where and how the run computes, not what it computes
RESUMABLE_KEYS = ("trainer.devices", "trainer.accelerator", "trainer.strategy", "trainer.num_nodes",
                  "trainer.max_epochs", "logger")


def resume_overrides(stored: dict[str, Any], args) -> dict[str, Any]:
    """The stored config with this command line's flags re-applied. Hardware, logger and
    ``--max-epochs`` may change (``RESUMABLE_KEYS``); any other flag or ``--set`` must
    match the stored value, else a ``UserError`` names each one that differs."""
    config = copy.deepcopy(stored)
    origins: dict[str, str] = {}
    if args.seed is not None or args.seeds is not None:
        wanted = [args.seed] if args.seed is not None else list(dict.fromkeys(args.seeds))
        if [int(s) for s in wanted] != [int(s) for s in stored.get("seeds", [])]:
            origins["seeds"] = f"--seed {args.seed}" if args.seed is not None else \
                "--seeds " + " ".join(map(str, args.seeds))
            config["seeds"] = wanted
    _apply_run_overrides(config, args, origins)
    if getattr(args, "data", None) is not None:
        given = Path(args.data).expanduser().resolve()
        if str(given) != str(stored.get("dataset", {}).get("dir")):
            origins["dataset"] = f"--data {args.data}"
            config.setdefault("dataset", {})["dir"] = str(given)
    if getattr(args, "task", None) is not None and args.task != stored.get("task"):
        origins["task"] = f"--task {args.task}"
        config["task"] = args.task
    if getattr(args, "config", None) is not None:
        path = str(recipe_path(args.config))
        if path != str(stored.get("recipe")):
            origins["recipe"] = f"--config {args.config}"
            config["recipe"] = path
    before, after = flatten(stored), flatten(config)
    differ = []
    for origin_key, flag in origins.items():
        changed = [k for k in set(before) | set(after)
                   if (k == origin_key or k.startswith(origin_key + ".")) and before.get(k) != after.get(k)]
        if changed and not any(origin_key == r or origin_key.startswith(r + ".") for r in RESUMABLE_KEYS):
            k = sorted(changed)[0]
            differ.append(f"--resume: {flag} differs from the stored run ({k} = {before.get(k)!r}); "
                          "a resumed run keeps its settings (start a new run with --overwrite or another --out)")
    if differ:
        raise UserError("\n".join(differ))
    from minbench.pipelines.validate import validate_run

    card = get_card(config["task"])
    validate_run(config, card, origins, kind_module(card.kind))
    return config


def dataset_section(data_dir: Path) -> dict[str, Any]:
    """The ``dataset`` section of a run's config: folder, name, version, manifest fingerprint."""
    from minbench.data.manifest import read_info

    info = read_info(data_dir)
    return {"dir": str(data_dir), "name": info.name, "version": info.version, "fingerprint": info.fingerprint}


def run_command(args) -> dict[str, Any] | None:
    """``minbench run``: the whole run; returns the summary on rank 0."""
    from minbench.data.locate import resolve_dataset
    from minbench.data.manifest import read_info

    rank0 = is_rank_zero()
    if args.resume:
        if args.out is None:
            config, card = resolve_config(args)
            out = Path("runs") / card.id / str(config["name"])
        else:
            out = args.out
        folder = RunFolder(Path(out))
        if rank0:
            folder.prepare(overwrite=args.overwrite, resume=True)
        stored = folder.read_config()
        config = resume_overrides(stored, args)
        card = get_card(config["task"])
        data_dir = Path(config["dataset"]["dir"])
        info = read_info(data_dir)
        if info.fingerprint != config["dataset"]["fingerprint"]:
            raise UserError(f"--resume: the dataset {data_dir} changed since the run started "
                            f"({config['dataset']['fingerprint']} -> {info.fingerprint})")
        if rank0 and config != stored:
            folder.write_config(config)  # the hardware/logger it continues with
    else:
        config, card = resolve_config(args)
        if args.data is not None:  # a partial release refuses the task before anything runs
            read_info(resolve_dataset(args.data)).require_task(card.id, args.data)
        if args.data is None and rank0:
            _announce_first_use()
        data_dir = resolve_dataset(args.data).resolve()
        config["dataset"] = dataset_section(data_dir)
        config["minbench_version"] = __version__
        config["command"] = " ".join(shlex.quote(a) for a in ["minbench", *sys.argv[1:]])
        out = Path(args.out) if args.out else Path("runs") / card.id / str(config["name"])
    return run_recipe(card, config, data_dir, Path(out), resume=args.resume, overwrite=args.overwrite,
                      leaderboard=args.leaderboard, quiet=args.quiet)


def run_recipe(card: TaskCard, config: dict[str, Any], data_dir: Path, out: Path,
               seeds: list[int] | None = None, *, resume: bool = False, overwrite: bool = False,
               leaderboard: bool = True, quiet: bool = False, summary: bool = True) -> dict[str, Any] | None:
    """Run a resolved recipe into the run folder ``out``: every seed not yet finished (the
    kind's ``run_seed``), then ``summary.json``. Returns the summary on global rank 0 (None
    on the other DDP ranks). The public entry point behind ``minbench run``; a pipeline that
    needs another run (the segmentation task's classifier) calls it too.

    ``config`` is ``resolve_config``'s result with a ``dataset`` section (``dataset_section``);
    ``seeds`` replaces its seeds; ``summary=False`` prints no summary table (a nested run).
    A new run prepares ``out`` (``overwrite`` empties a finished or unfinished run there)
    and writes the config; ``resume`` continues the run in ``out``.
    A ``UserError`` before any seed finished removes a folder this call created.
    """
    config = dict(config)
    if seeds is not None:
        config["seeds"] = [int(s) for s in dict.fromkeys(seeds)]
    folder = RunFolder(Path(out))
    rank0 = is_rank_zero()
    created = False
    if rank0:
        created = not folder.root.exists()
        folder.prepare(overwrite=overwrite, resume=resume)
        if not resume:
            folder.write_config(config)
    module = kind_module(card.kind)
    try:
        return _run_seeds(config, card, folder, data_dir, module, resume=resume, leaderboard=leaderboard,
                          quiet=quiet, show_summary=summary)
    except UserError:
        # A mistake found before any seed finished (bad backbone, weights, split ...): leave
        # no half run behind in a folder this command created, so a fixed re-run just works.
        if rank0 and not resume and created and not any(
                folder.seed_finished(s) for s in config["seeds"]):
            shutil.rmtree(folder.root, ignore_errors=True)
        raise


def _run_seeds(config: dict[str, Any], card: TaskCard, folder: RunFolder, data_dir: Path, module, *,
               resume: bool, leaderboard: bool, quiet: bool, show_summary: bool = True) -> dict[str, Any] | None:
    rank0 = is_rank_zero()
    seeds = list(config["seeds"])
    # Decided once, before any process of a DDP group starts, so every rank runs the same seeds.
    todo = [s for s in seeds if not (resume and folder.seed_finished(s))]
    for seed in todo:
        ctx = SeedContext(card=card, config=copy.deepcopy(config), data_dir=data_dir, seed=seed,
                          dir=folder.seed_dir(seed), folder=folder,
                          resume=resume, leaderboard=leaderboard, quiet=quiet)
        if rank0:
            ctx.dir.mkdir(parents=True, exist_ok=True)
            folder.mark_seed(seed, "running")
        result = module.run_seed(ctx)
        rank0 = is_rank_zero()  # a DDP launch happened inside run_seed: re-read the rank
        if rank0:
            if result is None:
                raise RuntimeError(f"pipeline {card.kind} returned no result for seed {seed}")
            folder.mark_seed(seed, "finished", **{**result, **ctx.extras})
    if not rank0:
        return None
    summary = folder.finish(seeds, extra={"task": card.id, "recipe": config["name"],
                                          "headline": card.headline,
                                          "dataset": config["dataset"]})
    if show_summary:
        _print_summary(card, summary, folder)
    return summary


def _announce_first_use() -> None:
    from minbench.data.locate import embedded_dir, is_dataset

    if not is_dataset(embedded_dir()):
        from minbench.console import notice

        notice(f"minbench: generating the embedded dataset into {embedded_dir()} (first use only)")


def _print_summary(card: TaskCard, summary: dict[str, Any], folder: RunFolder) -> None:
    """The result table on stdout: the card's metrics (headline starred), other metrics,
    those of named sub-methods (``name/metric``) one row per name, timings on one line."""
    from rich.console import Console
    from rich.table import Table

    one = len(summary["seeds"]) == 1

    def fmt(stats: dict[str, Any], digits: str = ".4f") -> str:
        return f"{stats['mean']:{digits}}" if one else f"{stats['mean']:{digits}} ± {stats['std']:{digits}}"

    table = Table()
    table.add_column("metric")
    table.add_column("value" if one else "mean ± std", justify="right")
    card_names = {s.name for s in card.metrics}
    for spec in card.metrics:
        stats = summary["metrics"].get(spec.name)
        if stats:
            table.add_row(spec.name + (" *" if spec.name == card.headline else ""), fmt(stats))
    groups: dict[str, list[str]] = {}
    for name, stats in summary["metrics"].items():
        if name in card_names:
            continue
        if "/" in name:
            group, metric = name.split("/", 1)
            groups.setdefault(group, []).append(f"{metric} {fmt(stats, '.3f')}")
        else:
            table.add_row(name, fmt(stats, ".4g"))
    for group, values in groups.items():
        table.add_row(f"[dim]{group}[/dim]", f"[dim]{', '.join(values)}[/dim]")
    console = Console()
    console.print(f"[bold]{card.id} · {summary['recipe']} · seed{'' if one else 's'} "
                  f"{', '.join(map(str, summary['seeds']))}[/bold]")
    console.print(table)
    stats = summary.get("stats", {})
    if stats:
        console.print("[dim]" + ", ".join(f"{k} {fmt(v, '.4g')}" for k, v in stats.items()) + "[/dim]")
    console.print(f"run folder: {folder.root}")
