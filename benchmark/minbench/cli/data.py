"""``minbench data {generate,prepare,check,show,seal}``: its arguments, and the calls into ``minbench.data``."""

from __future__ import annotations

import argparse
from pathlib import Path

from minbench.cli.common import add_verbosity_flags
from minbench.data.locate import DEFAULT_SYNTH_SEED, DEFAULT_SYNTH_SIZE


def register(sub) -> None:
    from minbench.cards import all_cards

    p = sub.add_parser("data", help="generate, prepare, check or show a dataset")
    verbs = p.add_subparsers(dest="data_command", metavar="VERB", required=True)

    g = verbs.add_parser("generate", help="generate the embedded (synthetic) dataset")
    g.add_argument("--out", type=Path, default=None, help="target folder (default: the cache)")
    g.add_argument("--seed", type=_seed, default=DEFAULT_SYNTH_SEED, help="an integer, 0 <= seed < 2**32")
    from minbench.data.synth.options import EMBEDDED_SIZES

    g.add_argument("--size", choices=EMBEDDED_SIZES, default=DEFAULT_SYNTH_SIZE,
                   help="tiny: tests; small: the default, fast on a laptop; full: near the real subset sizes")
    g.add_argument("--workers", type=_workers, default=None, help="processes (default: all cores)")
    add_verbosity_flags(g)
    g.set_defaults(func=_generate)

    pr = verbs.add_parser("prepare", help="build the manifest of the real MineralImage5k release")
    pr.add_argument("--source", type=Path, required=True,
                    help="the unpacked release folder, or a folder holding its archives and CSVs")
    pr.add_argument("--out", type=Path, default=None, help="target folder (default: the cache)")
    add_verbosity_flags(pr)
    pr.set_defaults(func=_prepare)

    c = verbs.add_parser("check", help="verify a prepared dataset; exit 0 only when sound")
    c.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded one)")
    c.add_argument("--quick", action="store_true", help="read image headers only; skip decoding every photo")
    add_verbosity_flags(c)
    c.set_defaults(func=_check)

    s = verbs.add_parser("show", help="draw a contact sheet of samples with masks, boxes and labels")
    s.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded one)")
    s.add_argument("--task", default=None,
                   help=f"only samples of this task's test split ({', '.join(all_cards())})")
    s.add_argument("--n", type=int, default=24, help="how many samples")
    s.add_argument("--out", type=Path, default=Path("contact_sheet.png"))
    add_verbosity_flags(s)
    s.set_defaults(func=_show)
    _add_seal(verbs)


def _add_seal(verbs) -> None:
    from minbench.cards import all_cards

    se = verbs.add_parser("seal", help="write a public dataset (test truth sealed) and a separate truth bundle",
                          description="Hidden labels: a public dataset whose test rows of the chosen tasks hold "
                                      "only what their cards name public (photos, training truth kept), and a "
                                      "truth bundle (the sealed rows, their masks, the original dataset's identity) "
                                      "for `minbench score --truth`. Tasks one of whose test rows is a training "
                                      "row of another are sealed apart.")
    se.add_argument("--data", type=Path, default=None, help="dataset folder (default: the embedded one)")
    se.add_argument("--out", type=Path, required=True, help="the public dataset folder to write (new)")
    se.add_argument("--truth", type=Path, required=True, help="the truth bundle folder to write (new)")
    se.add_argument("--task", dest="tasks", action="append", required=True,
                    help=f"a task to seal (repeatable): {', '.join(all_cards())}")
    se.add_argument("--private-fraction", type=float, default=0.0,
                    help="record a dev/final split of each task's test rows with this fraction final (default 0: none)")
    se.add_argument("--seed", type=int, default=0, help="seed of the dev/final split (default 0)")
    add_verbosity_flags(se)
    se.set_defaults(func=_seal)


def _seed(text: str) -> int:
    """``--seed``: checked while parsing, so a bad one is argparse's one line, exit 2."""
    from minbench.data.synth import check_seed
    from minbench.errors import UserError

    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (0 <= seed < 2**32)") from None
    except UserError:
        raise argparse.ArgumentTypeError(f"{text} is out of range (0 <= seed < 2**32)") from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _generate(args) -> int:
    from minbench.data.locate import generate_embedded
    from minbench.data.synth import generate

    if args.out is None:  # the cache's copy: locked against a concurrent first use, leftovers cleaned
        generate_embedded(args.size, args.seed, workers=args.workers, replace=True)
    else:
        generate(args.out, seed=args.seed, size=args.size, workers=args.workers, progress=True)
    return 0


def _prepare(args) -> int:
    from minbench.data.release import prepare
    from minbench.paths import cache_dir

    out = args.out or cache_dir() / "datasets" / "mineralimage5k"
    prepare(args.source, out, progress=True)
    return 0


def _check(args) -> int:
    from minbench.data.locate import resolve_dataset

    folder = resolve_dataset(args.data)
    from minbench.data.check import check_dataset, print_report

    report = check_dataset(folder, quick=args.quick)
    print_report(report)
    return 0 if report.ok else 1


def _seal(args) -> int:
    from minbench.data.public import seal_dataset

    info, truth = seal_dataset(args.data, args.out, args.truth, args.tasks, private_fraction=args.private_fraction,
                               seed=args.seed)
    print(f"public dataset: {args.out} ({info.fingerprint}, sealed: {', '.join(info.public['tasks'])})")
    print(f"truth bundle: {truth} (keep it apart; minbench score --truth {truth})")
    return 0


def _show(args) -> int:
    from minbench.data.locate import resolve_dataset
    from minbench.data.show import contact_sheet

    path = contact_sheet(resolve_dataset(args.data), out=args.out, task=args.task, n=args.n)
    print(f"wrote {path}")  # the result: stdout
    return 0
