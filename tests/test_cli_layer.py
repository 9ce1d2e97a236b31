"""The command line is one layer above everything: argparse lives in ``minbench/cli/`` only,
each verb keeps its ``minbench VERB`` program name, and a run's values reach the pipelines
as plain data (``RunRequest``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from minbench.cli import build_parser, main
from minbench.errors import UserError

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark" / "minbench"

def _imports_argparse(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def test_only_the_cli_imports_argparse():
    found = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if p.relative_to(PACKAGE).parts[0] != "cli" and _imports_argparse(p))
    assert found == []


@pytest.mark.parametrize("argv, prog", [
    (["run"], "minbench run"), (["score"], "minbench score"), (["data", "generate"], "minbench data generate"),
    (["leaderboard", "add-published"], "minbench leaderboard add-published"), (["list"], "minbench list"),
    (["bench", "train"], "minbench bench train"), (["compare"], "minbench compare"),
])
def test_every_verb_keeps_its_program_name(argv, prog, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


def test_run_arguments_become_a_run_request():
    from minbench.cli.run import request
    from minbench.pipelines.resolve import RunRequest

    args = build_parser().parse_args(["run", "--task", "segmentation", "--cam", "layercam", "--top-k", "3",
                                      "--seeds", "1", "2", "--set", "trainer.max_epochs=2", "--no-leaderboard"])
    req = request(args)
    assert isinstance(req, RunRequest)
    assert (req.task, req.cam, req.top_k, req.seeds, req.overrides, req.leaderboard) == \
        ("segmentation", "layercam", 3, [1, 2], ["trainer.max_epochs=2"], False)
    assert req.command.startswith("minbench")


def test_every_list_comes_from_the_list_registry():
    from minbench.cli.lists import register  # noqa: F401  (the verb reads LISTS for its choices)
    from minbench.listing import LISTS, list_rows

    assert LISTS.names() == ["tasks", "recipes", "cams", "backbones", "datasets"]
    assert {r["id"] for r in list_rows("tasks")} >= {"fewshot-10", "size"}
    with pytest.raises(UserError, match="unknown list"):
        list_rows("nope")


def test_bench_data_passes_its_own_options_to_the_benchmark(monkeypatch, capsys):
    """Every option of `bench data` reaches `bench_data`, and nothing it does not take."""
    import inspect

    import minbench.bench.data as bench_data_module
    from minbench.cli import main

    seen = {}

    def fake(**kwargs):
        inspect.signature(real).bind(**kwargs)  # a keyword the benchmark lacks fails here
        seen.update(kwargs)
        return {"benchmark": "data"}

    real = bench_data_module.bench_data
    monkeypatch.setattr(bench_data_module, "bench_data", fake)
    assert main(["bench", "data", "--size", "32", "--n", "8", "--workers", "1", "--epochs", "1"]) == 0
    assert seen["size"] == 32 and seen["n"] == 8 and seen["workers"] == 1 and seen["epochs"] == 1
    capsys.readouterr()
