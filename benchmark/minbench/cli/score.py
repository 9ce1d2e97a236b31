"""``minbench score``, ``minbench leaderboard [add-published|publish]`` and ``minbench compare``:
their arguments, and the calls into ``minbench.scoring`` with the tables they print."""

from __future__ import annotations

from pathlib import Path

from minbench.scoring.bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES


def register(sub) -> None:
    from minbench.cards import task_ids

    tasks = ", ".join(task_ids())
    _add_score(sub, tasks)
    _add_leaderboard(sub, tasks)
    _add_compare(sub)


def _add_score(sub, tasks: str) -> None:
    s = sub.add_parser("score", help="score a predictions file against a task's test split",
                       description="Check a submission against the task card and the dataset's test rows, "
                                   "compute the card's metrics with a bootstrap interval for the headline, write "
                                   "a score JSON and add an entry to the task's leaderboard.")
    s.add_argument("--task", required=True, help=f"task id ({tasks})")
    s.add_argument("--predictions", type=Path, required=True,
                   help="ranked CSV (classification), size CSV (size), or folder/zip of PNG masks (segmentation)")
    s.add_argument("--data", type=Path, default=None, help="prepared dataset folder (default: the embedded one)")
    s.add_argument("--truth", type=Path, default=None,
                   help="the truth bundle of the public dataset --data (minbench data seal)")
    s.add_argument("--part", choices=("dev", "final"), default=None,
                   help="with --truth: score only this part of the bundle's dev/final split (no leaderboard entry)")
    s.add_argument("--name", default=None, help="leaderboard entry name (default: the predictions file's name)")
    s.add_argument("--method", default="", help="one line on the method")
    board = s.add_mutually_exclusive_group()
    board.add_argument("--leaderboard", type=Path, default=None,
                       help="add the entry to this leaderboard file (default: the task's board for the dataset)")
    board.add_argument("--leaderboard-dir", type=Path, default=None,
                       help="add the entry to the task's board in this folder (default: $MINBENCH_LEADERBOARDS, "
                            "else $MINBENCH_HOME/leaderboards; `--leaderboard-dir leaderboards` updates the "
                            "shipped boards of a checkout)")
    board.add_argument("--no-leaderboard", action="store_true", help="only write the score JSON")
    s.add_argument("--out", type=Path, default=None,
                   help="score JSON path (default: beside the predictions, <name>.score.json)")
    s.add_argument("--per-sample", action="store_true", help="also write one record per test sample in the JSON")
    s.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                   help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.set_defaults(func=_score)


def _add_leaderboard(sub, tasks: str) -> None:
    lb = sub.add_parser("leaderboard", help="show leaderboards (terminal, Markdown or HTML), add published numbers",
                        description="Show the leaderboards: a table per task and dataset.")
    lb.add_argument("--task", default=None, help=f"only this task ({tasks})")
    lb.add_argument("--format", choices=("table", "markdown", "html"), default="table")
    lb.add_argument("--out", type=Path, default=None, help="write to this file instead of the terminal")
    lb.add_argument("--dir", type=Path, action="append", default=None,
                    help="read boards from this folder only (repeatable; default: your boards and the shipped ones)")
    lb.add_argument("--wide", action="store_true",
                    help="terminal: every column (default below 120 columns: rank, name, headline, n, seeds)")
    lb.set_defaults(func=_show)
    verbs = lb.add_subparsers(dest="leaderboard_command", metavar="VERB")
    _add_published_verb(verbs, tasks)
    pub = verbs.add_parser("publish", help="copy one of your entries (and its per-sample file) into the shipped boards",
                           description="Copy an entry from your boards ($MINBENCH_LEADERBOARDS, else "
                                       "$MINBENCH_HOME/leaderboards) with its per-sample results into the shipped "
                                       "leaderboards/ of this checkout, replacing an entry of that name there.")
    pub.add_argument("--task", dest="pub_task", required=True, help="task id")
    pub.add_argument("--name", required=True, help="entry name on your board")
    pub.add_argument("--from", dest="source_dir", type=Path, default=None, help="your boards' folder (default above)")
    pub.add_argument("--to", dest="dest_dir", type=Path, default=None,
                     help="the shipped folder (default: the checkout's leaderboards/)")
    pub.set_defaults(func=_publish)


def _add_published_verb(verbs, tasks: str) -> None:
    p = verbs.add_parser("add-published", help="record a paper's numbers with their citation",
                         description="Record published numbers (source 'published'). They never enter a scored "
                                     "board: they go to <task>--<dataset>.json, or with --reference (another "
                                     "dataset and protocol) to <dataset>.json, shown beside tasks of that kind.")
    p.add_argument("--task", dest="pub_task", required=True,
                   help=f"task id the numbers are for (or resemble): {tasks}")
    p.add_argument("--name", required=True, help="entry name, e.g. the model or 'human expert'")
    p.add_argument("--metrics", required=True, help="NAME=VALUE,... e.g. top1=0.66,top5=81%%")
    p.add_argument("--citation", required=True, help="where the numbers come from")
    p.add_argument("--method", default="", help="one line on the method")
    p.add_argument("--dataset", default="mineralimage5k", help="dataset name (default mineralimage5k)")
    p.add_argument("--dataset-version", default="published", help="dataset version as the paper gives it")
    p.add_argument("--reference", action="store_true",
                   help="numbers of another dataset/protocol: shown beside, never ranked against minbench scores")
    p.add_argument("--title", default=None, help="title of a reference board (default: the dataset name)")
    p.add_argument("--n-samples", type=int, default=None, help="test images the numbers were measured on")
    p.add_argument("--url", default=None)
    p.add_argument("--notes", default=None)
    p.add_argument("--leaderboard", type=Path, default=None, help="this board file instead of the default one")
    p.set_defaults(func=_add_published)


def _add_compare(sub) -> None:
    c = sub.add_parser("compare", help="compare two entries or predictions files on the same test samples",
                       description="The difference in every card metric (A - B) with a paired bootstrap interval "
                                   "(both resampled on the same samples; classes first where the card clusters by "
                                   "class) and, for top-k accuracy, the exact McNemar test. Seeds both sides have "
                                   "are paired seed with seed; the difference is their mean.")
    c.add_argument("--task", required=True, help="task id")
    c.add_argument("a", help="entry name (on the task's boards) or predictions file")
    c.add_argument("b", help="entry name or predictions file")
    c.add_argument("--data", type=Path, default=None,
                   help="dataset of predictions files (default: the embedded one), and the board to take "
                        "entries from when they are on boards of several datasets")
    c.add_argument("--dir", type=Path, action="append", default=None,
                   help="boards folder to look entries up in (repeatable; default: yours and the shipped ones)")
    c.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                   help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON here")
    c.set_defaults(func=_compare)


def _default_out(predictions: Path) -> Path:
    stem = predictions.name[:-4] if predictions.suffix.lower() in (".csv", ".zip") else predictions.name
    return predictions.with_name(f"{stem}.score.json")


def _score(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from minbench.cards import get_card
    from minbench.errors import UserError
    from minbench.scoring.record import score_and_record
    from minbench.scoring.render import fmt, fmt_ci
    from minbench.scoring.score import load_task_data

    if args.resamples < 1:
        raise UserError(f"--resamples {args.resamples}: must be at least 1")
    task_data = load_task_data(args.task, args.data, truth=args.truth, part=args.part)
    out = args.out or _default_out(args.predictions)
    entry = None
    if not args.no_leaderboard and args.part is None:  # a board ranks whole test sets
        entry = dict(name=args.name or _default_out(args.predictions).name[: -len(".score.json")],
                     method=args.method, path=args.leaderboard, leaderboard_dir=args.leaderboard_dir,
                     task_data=task_data)
    result, board = score_and_record(args.task, args.predictions, None, out, task_data=task_data, entry=entry,
                                     source="submission", n_resamples=args.resamples, seed=args.seed,
                                     per_sample=args.per_sample)
    card = get_card(args.task)
    console = Console()
    t = Table(title=f"{args.task} · {result.n_samples} test samples · dataset {result.dataset['name']} "
                    f"{result.dataset['version']}", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column(f"{int(100 * card_level(result))}% interval", justify="right")
    for spec in card.metrics:
        col = {"name": spec.name, "kind": spec.kind, "unit": spec.unit}
        t.add_row(spec.name + (" (headline)" if spec.name == card.headline else ""),
                  fmt(result.metrics[spec.name], col), fmt_ci(result.ci.get(spec.name), col))
    console.print(t)
    if result.n_answered != result.n_samples:
        console.print(f"answered {result.n_answered} of {result.n_samples} test samples")
    console.print(f"score JSON: {out}")
    if board:
        console.print(f"leaderboard: {board}")
    return 0


def card_level(result) -> float:
    ci = result.ci.get(result.headline) or {}
    return float(ci.get("level", DEFAULT_LEVEL))


def _show(args) -> int:
    from minbench.cards import get_card
    from minbench.errors import UserError
    from minbench.io import write_text_atomic
    from minbench.scoring import render
    from minbench.scoring.leaderboard import load_boards
    from minbench.scoring.score import now_utc

    if args.task:
        get_card(args.task)  # a UserError naming the known tasks
    sections = render.group(load_boards(args.dir), task=args.task)
    if args.format == "table":
        if args.out:
            import io

            from rich.console import Console

            buf = io.StringIO()
            render.render_table(sections, Console(file=buf, width=140, no_color=True, color_system=None),
                                wide=True)
            text = buf.getvalue()
        else:
            render.render_table(sections, wide=True if args.wide else None)
            return 0
    else:
        text = render.render_markdown(sections) if args.format == "markdown" else \
            render.render_html(sections, generated=now_utc())
        if not args.out:
            print(text, end="")
            return 0
    try:
        write_text_atomic(args.out, text)
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {args.out}")
    return 0


def _add_published(args) -> int:
    from minbench.cards import get_card
    from minbench.scoring.leaderboard import add_published, parse_metrics

    card = get_card(args.pub_task)
    metrics = parse_metrics(args.metrics, None if args.reference else card)
    path = add_published(args.pub_task, name=args.name, metrics=metrics, citation=args.citation, method=args.method,
                         dataset_name=args.dataset, dataset_version=args.dataset_version, reference=args.reference,
                         title=args.title, n_samples=args.n_samples, url=args.url, notes=args.notes,
                         path=args.leaderboard)
    print(f"added {args.name!r} to {path}")
    return 0


def _publish(args) -> int:
    from minbench.scoring.leaderboard import publish

    path = publish(args.pub_task, args.name, source_dir=args.source_dir, dest_dir=args.dest_dir)
    print(f"published {args.name!r} to {path}")
    return 0


def _compare(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from minbench.cards import get_card
    from minbench.errors import UserError
    from minbench.io import write_json_atomic
    from minbench.scoring.compare import compare
    from minbench.scoring.render import fmt, fmt_ci

    if args.resamples < 1:
        raise UserError(f"--resamples {args.resamples}: must be at least 1")
    cmp = compare(args.task, args.a, args.b, data_dir=args.data, dirs=args.dir, n_resamples=args.resamples,
                  seed=args.seed)
    specs = {m.name: m for m in get_card(args.task).metrics}
    console = Console()
    t = Table(title=f"{args.task} · A = {cmp.a.label} · B = {cmp.b.label} · {cmp.a.samples.n} samples · "
                    f"{cmp.seeds}", title_justify="left")
    for name, kw in (("metric", {}), ("A", {"justify": "right"}), ("B", {"justify": "right"}),
                     (f"A - B [{int(100 * DEFAULT_LEVEL)}% paired CI]", {"justify": "right"}), ("McNemar p", {"justify": "right"})):
        t.add_column(name, **kw)
    for r in cmp.rows:
        spec = specs[r["metric"]]
        col = {"name": spec.name, "kind": spec.kind, "unit": spec.unit}
        diff = fmt(r["diff"], col)
        mc = r.get("mcnemar")
        t.add_row(r["metric"], fmt(r["a"], col), fmt(r["b"], col), f"{diff} {fmt_ci(r['ci'], col)}",
                  "" if not mc else f"{mc['p']:.3g} ({sum(x['only_a'] for x in mc['per_seed'])}:"
                                    f"{sum(x['only_b'] for x in mc['per_seed'])})")
    console.print(t)
    console.print("[dim]McNemar: exact binomial test of the samples only A (:) only B gets right; with several "
                  "paired seeds, the largest p[/dim]")
    if args.json:
        write_json_atomic(args.json, cmp.to_json())
        print(f"wrote {args.json}")
    return 0
