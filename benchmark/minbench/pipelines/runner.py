"""What ``minbench run`` does for every task kind: prepare the run folder, loop over seeds,
summarise. The recipe is resolved in ``pipelines/resolve.py``; the kind-specific work is in
``pipelines/<kind>.py``, found through ``pipelines/kinds.PIPELINES``.

``run(request)`` is what ``minbench run`` calls; ``run_recipe(card, config, data_dir, out,
seeds)`` runs a resolved recipe, and a pipeline that needs another run calls it (the
segmentation task trains its default classifier so).

Contract of a kind module (``classification.py``, ``segmentation.py``, ``size.py``,
``zeroshot.py``)::

    @PIPELINES.register("<kind>", **hooks)   # default recipe: kinds.DEFAULT_RECIPES
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
import shutil
from pathlib import Path
from typing import Any

from minbench._version import __version__
from minbench.cards import TaskCard, get_card
from minbench.dist import is_rank_zero
from minbench.errors import UserError
from minbench.pipelines.context import SeedContext
from minbench.pipelines.kinds import pipeline
from minbench.pipelines.resolve import RunRequest, dataset_section, resolve_config, resume_overrides
from minbench.pipelines.run_folder import RunFolder
from minbench.scoring.truth import NoTruthError


def run(request: RunRequest) -> dict[str, Any] | None:
    """``minbench run``: the whole run; returns the summary on rank 0."""
    if request.resume:
        card, config, data_dir, out = _resumed(request)
    else:
        card, config, data_dir, out = _started(request)
    return run_recipe(card, config, data_dir, Path(out), resume=request.resume, overwrite=request.overwrite,
                      leaderboard=request.leaderboard, quiet=request.quiet)


def _resumed(request: RunRequest) -> tuple[TaskCard, dict[str, Any], Path, Path]:
    """The stored run in ``request.out`` (default: where the recipe's run would be), with the
    hardware and logger it continues with."""
    from minbench.data.manifest import read_info

    if request.out is None:
        config, card = resolve_config(request)
        out = Path("runs") / card.id / str(config["name"])
    else:
        out = request.out
    folder = RunFolder(Path(out))
    rank0 = is_rank_zero()
    if rank0:
        folder.prepare(overwrite=request.overwrite, resume=True)
    stored = folder.read_config()
    config = resume_overrides(stored, request)
    card = get_card(config["task"])
    data_dir = Path(config["dataset"]["dir"])
    info = read_info(data_dir)
    if info.fingerprint != config["dataset"]["fingerprint"]:
        raise UserError(f"--resume: the dataset {data_dir} changed since the run started "
                        f"({config['dataset']['fingerprint']} -> {info.fingerprint})")
    if rank0 and config != stored:
        folder.write_config(config)  # the hardware/logger it continues with
    return card, config, data_dir, Path(out)


def _started(request: RunRequest) -> tuple[TaskCard, dict[str, Any], Path, Path]:
    """A new run's resolved config (with its dataset, version and command) and folder."""
    from minbench.data.locate import resolve_dataset
    from minbench.data.manifest import read_info

    config, card = resolve_config(request)
    if request.data is not None:  # a partial release refuses the task before anything runs
        read_info(resolve_dataset(request.data)).require_task(card.id, request.data)
    if request.data is None and is_rank_zero():
        _announce_first_use()
    data_dir = resolve_dataset(request.data).resolve()
    config["dataset"] = dataset_section(data_dir)
    config["minbench_version"] = __version__
    config["command"] = request.command
    out = Path(request.out) if request.out else Path("runs") / card.id / str(config["name"])
    return card, config, data_dir, out


def run_recipe(card: TaskCard, config: dict[str, Any], data_dir: Path, out: Path,
               seeds: list[int] | None = None, *, resume: bool = False, overwrite: bool = False,
               leaderboard: bool = True, quiet: bool = False, summary: bool = True) -> dict[str, Any] | None:
    """Run a resolved recipe into the run folder ``out``: every seed not yet finished (the
    kind's seed function), then ``summary.json``. Returns the summary on global rank 0 (None
    on the other DDP ranks). The entry point behind ``minbench run``; a pipeline that
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
    run_seed = pipeline(card.kind)
    try:
        return _run_seeds(config, card, folder, data_dir, run_seed, resume=resume, leaderboard=leaderboard,
                          quiet=quiet, show_summary=summary)
    except UserError:
        # A mistake found before any seed finished (bad backbone, weights, split ...): leave
        # no half run behind in a folder this command created, so a fixed re-run just works.
        if rank0 and not resume and created and not any(
                folder.seed_finished(s) for s in config["seeds"]):
            shutil.rmtree(folder.root, ignore_errors=True)
        raise


def _run_seeds(config: dict[str, Any], card: TaskCard, folder: RunFolder, data_dir: Path, run_seed, *,
               resume: bool, leaderboard: bool, quiet: bool, show_summary: bool = True) -> dict[str, Any] | None:
    rank0 = is_rank_zero()
    seeds = list(config["seeds"])
    # Decided once, before any process of a DDP group starts, so every rank runs the same seeds.
    todo = [s for s in seeds if not (resume and folder.seed_finished(s))]
    unscored = []
    for seed in todo:
        ctx = SeedContext(card=card, config=copy.deepcopy(config), data_dir=data_dir, seed=seed,
                          dir=folder.seed_dir(seed), folder=folder,
                          resume=resume, leaderboard=leaderboard, quiet=quiet)
        if rank0:
            ctx.dir.mkdir(parents=True, exist_ok=True)
            folder.mark_seed(seed, "running")
        try:
            result = run_seed(ctx)
        except NoTruthError as exc:  # a public dataset: this seed's submission is written, its truth is elsewhere
            mine = exc.predictions is not None and Path(exc.predictions).resolve().is_relative_to(ctx.dir.resolve())
            if not (show_summary and mine):
                raise  # a nested run (the segmentation classifier's) needs its scores: the caller says why
            unscored.append(exc.predictions)
            if is_rank_zero():
                folder.mark_seed(seed, "predicted", predictions=str(exc.predictions))
            continue
        rank0 = is_rank_zero()  # a DDP launch happened inside run_seed: re-read the rank
        if rank0:
            if result is None:
                raise RuntimeError(f"pipeline {card.kind} returned no result for seed {seed}")
            folder.mark_seed(seed, "finished", **{**result, **ctx.extras})
    if not rank0:
        return None
    if unscored:  # nothing to summarise: the scores need the truth bundle
        for path in unscored:
            print(f"public dataset: predictions written to {path}, no truth here to score them "
                  "(minbench score --truth TRUTH)")
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
    named sub-methods (``name/metric``) one row per name with their headline, timings on one line."""
    from rich.console import Console
    from rich.table import Table

    one = len(summary["seeds"]) == 1

    def fmt(stats: dict[str, Any], digits: str = ".4f") -> str:
        # a value only some seeds report has one seed's mean and no std
        if one or stats.get("std") is None:
            return f"{stats['mean']:{digits}}"
        return f"{stats['mean']:{digits}} ± {stats['std']:{digits}}"

    table = Table()
    table.add_column("metric")
    table.add_column("value" if one else "mean ± std", justify="right")
    card_names = {s.name for s in card.metrics}
    for spec in card.metrics:
        stats = summary["metrics"].get(spec.name)
        if stats:
            table.add_row(spec.name + (" *" if spec.name == card.headline else ""), fmt(stats))
    groups: dict[str, dict[str, str]] = {}
    for name, stats in summary["metrics"].items():
        if name in card_names:
            continue
        if "/" in name:
            group, metric = name.split("/", 1)
            groups.setdefault(group, {})[metric] = f"{metric} {fmt(stats, '.3f')}"
        else:
            table.add_row(name, fmt(stats, ".4g"))
    for group, values in groups.items():
        # a sub-method's headline only, one line each: its other metrics are in summary.json
        shown = [values[card.headline]] if card.headline in values else list(values.values())
        table.add_row(f"[dim]{group}[/dim]", f"[dim]{', '.join(shown)}[/dim]")
    console = Console()
    console.print(f"[bold]{card.id} · {summary['recipe']} · seed{'' if one else 's'} "
                  f"{', '.join(map(str, summary['seeds']))}[/bold]")
    console.print(table)
    stats = summary.get("stats", {})
    if stats:
        console.print("[dim]" + ", ".join(f"{k} {fmt(v, '.4g')}" for k, v in stats.items()) + "[/dim]")
    console.print(f"run folder: {folder.root}")
