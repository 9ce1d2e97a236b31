"""The package's imports point down its layers only, and no two modules import each other.

``LAYERS`` is the one statement of the layer order (the docs' development page points
here): a part of the package may import its own modules and those of lower layers, never a
part of its own layer or above. Every ``import`` counts, at module level or inside a
function: a lazy upward import is still an upward dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark" / "minbench"

#: bottom to top; each entry is one layer of top-level parts (modules or sub-packages)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "errors"),
    ("paths", "io", "dist", "registry"),
    ("console",),
    ("cards", "recipes"),
    ("data",),
    ("scoring",),
    ("export",),
    ("models",),
    ("trainers",),
    ("pipelines",),
    ("listing",),
    ("api",),
    ("bench",),
    ("cli",),
    ("__init__",),  # ``import minbench``: the lazy facade over the API
)


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from a import b`` counts as ``a.b``
    when ``b`` is a module, else as ``a``)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                while target and target not in modules:  # ``import a.b.c`` of a name inside c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def part(module: str) -> str:
    """The top-level part a module belongs to (``minbench.data.synth.render`` -> ``data``)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def layer_of(module: str) -> int:
    name = part(module)
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"{module}: its part {name!r} is in no layer of LAYERS; add it where it belongs")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        for dst in targets:
            if part(src) != part(dst) and layer_of(dst) >= layer_of(src):
                bad.append(f"{src} -> {dst} ({part(dst)!r} is not below {part(src)!r})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_every_part_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_imports_point_down_only():
    bad = upward_imports(import_graph())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(group) for group in found)


@pytest.mark.parametrize("source, expect_up, expect_cycle", [
    ({"a/__init__": "", "a/low": "from a import high\n", "a/high": "import a.low\n"}, True, True),
    ({"a/__init__": "", "a/low": "", "a/high": "from a.low import x\n"}, False, False),
])
def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path, monkeypatch, source, expect_up, expect_cycle):
    for name, text in source.items():
        path = tmp_path / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "LAYERS", (("low",), ("high",)))
    graph = import_graph(tmp_path / "a")
    assert bool(upward_imports(graph)) is expect_up
    assert bool(cycles(graph)) is expect_cycle
