"""Constructor signatures read from source, without importing the module.

``minbench run`` checks every recipe key and ``--set`` value against its target's
``__init__`` before anything slow happens; importing the targets (torch, Lightning, timm)
would take longer than the whole check may. So the signature is read with ``ast`` from
the module's file (found without executing it), following re-exports (``from x import
Name``) and module-level type aliases, and a value is checked against the annotation
(``int``, ``Optional[...]``, ``Literal[...]``, ``list[...]``, unions, ...). What cannot be
read statically (a C extension, a class without its own ``__init__``) returns ``None``,
and the caller falls back to ``inspect.signature`` on the imported class.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_MAX_DEPTH = 8


@dataclass(frozen=True)
class Param:
    name: str
    annotation: ast.expr | None
    module: str                   # where the annotation's names resolve
    has_default: bool
    kind: str                     # "positional", "keyword", "var_positional", "var_keyword"

    @property
    def annotation_text(self) -> str:
        return ast.unparse(self.annotation) if self.annotation is not None else "any value"


@lru_cache(maxsize=None)
def module_file(module: str) -> Path | None:
    """The source file of ``module``, found without importing it (only its top package's
    location is looked up)."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    if not spec.submodule_search_locations:
        return None
    base = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def module_ast(module: str) -> ast.Module | None:
    path = module_file(module)
    if path is None:
        return None
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = (module_file(module) or Path()).name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def lookup(module: str, name: str, depth: int = 0):
    """``name`` at the top level of ``module``: ``("class", ClassDef, module)``,
    ``("alias", expr, module)`` or None; follows ``from x import name``."""
    tree = module_ast(module)
    if tree is None or depth > _MAX_DEPTH:
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            found = ("class", node, module)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found = ("alias", node.value, module)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name \
                and node.value is not None:
            found = ("alias", node.value, module)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(module, node)
                    sub = lookup(source, alias.name, depth + 1)
                    if sub is None and module_file(f"{source}.{alias.name}") is not None:
                        sub = ("module", None, f"{source}.{alias.name}")
                    found = sub or found
    return found


def signature(class_path: str) -> tuple[list[Param], str] | None:
    """The parameters of ``class_path.__init__`` (without ``self``) and the class's own
    module, read from source; None when they cannot be read that way."""
    module, _, name = class_path.rpartition(".")
    if not module:
        return None
    found = lookup(module, name)
    if found is None or found[0] != "class":
        return None
    _, cls, where = found
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return _dataclass_fields(cls, where)
    a = init.args
    params: list[Param] = []
    positional = a.posonlyargs + a.args
    n_defaults = len(a.defaults)
    for i, arg in enumerate(positional[1:], start=1):
        params.append(Param(arg.arg, arg.annotation, where, i >= len(positional) - n_defaults, "positional"))
    if a.vararg is not None:
        params.append(Param(a.vararg.arg, None, where, True, "var_positional"))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append(Param(arg.arg, arg.annotation, where, default is not None, "keyword"))
    if a.kwarg is not None:
        params.append(Param(a.kwarg.arg, None, where, True, "var_keyword"))
    return params, where


def _dataclass_fields(cls: ast.ClassDef, where: str) -> tuple[list[Param], str] | None:
    names = [ast.unparse(d.func if isinstance(d, ast.Call) else d).split(".")[-1] for d in cls.decorator_list]
    if "dataclass" not in names or cls.bases:
        return None
    params = [Param(n.target.id, n.annotation, where, n.value is not None, "positional")
              for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
              and "ClassVar" not in ast.unparse(n.annotation)]
    return params, where


# --------------------------------------------------------------------------- values
_SIMPLE = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, (str, bytes)),
    "Path": lambda v: isinstance(v, str),
    "PathLike": lambda v: isinstance(v, str),
    "_PATH": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list), "List": lambda v: isinstance(v, list),
    "tuple": lambda v: isinstance(v, list), "Tuple": lambda v: isinstance(v, list),
    "Sequence": lambda v: isinstance(v, (list, str)), "Iterable": lambda v: isinstance(v, (list, str, dict)),
    "set": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict),
    "Dict": lambda v: isinstance(v, dict), "Mapping": lambda v: isinstance(v, dict),
    "MutableMapping": lambda v: isinstance(v, dict),
    "None": lambda v: v is None, "NoneType": lambda v: v is None,
    "Any": lambda v: True, "object": lambda v: True,
}
_SEQUENCES = ("list", "List", "Sequence", "Iterable", "set", "Set", "frozenset", "MutableSequence")


def _union(results: list[bool | None]) -> bool | None:
    if any(r is True for r in results):
        return True
    return False if all(r is False for r in results) else None


def matches(value: Any, node: ast.expr | None, module: str, depth: int = 0) -> bool | None:
    """Whether a YAML value fits an annotation: True, False, or None (cannot tell)."""
    if node is None or depth > _MAX_DEPTH:
        return None
    if isinstance(value, dict) and isinstance(value.get("class_path"), str):
        return True  # an object built from its own class_path (checked on its own)
    if isinstance(node, ast.Constant):
        if node.value is None:
            return value is None
        if isinstance(node.value, str):
            try:
                return matches(value, ast.parse(node.value, mode="eval").body, module, depth + 1)
            except SyntaxError:
                return None
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([matches(value, node.left, module, depth + 1), matches(value, node.right, module, depth + 1)])
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name in _SIMPLE:
            return _SIMPLE[name](value)
        if isinstance(node, ast.Name):
            found = lookup(module, name)
            if found is not None and found[0] == "alias":
                return matches(value, found[1], found[2], depth + 1)
        return None
    if isinstance(node, ast.Subscript):
        base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Optional":
            return True if value is None else matches(value, args[0], module, depth + 1)
        if base == "Union":
            return _union([matches(value, a, module, depth + 1) for a in args])
        if base == "Literal":
            try:
                allowed = [ast.literal_eval(a) for a in args]
            except ValueError:
                return None
            return any(value == a and type(value) is type(a) for a in allowed)
        if base in _SEQUENCES:
            if not isinstance(value, list):
                return False
            return not any(matches(v, args[0], module, depth + 1) is False for v in value)
        if base in ("tuple", "Tuple"):
            if not isinstance(value, list):
                return False
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                args = [args[0]] * len(value)
            if len(args) != len(value):
                return False
            results = [matches(v, a, module, depth + 1) for v, a in zip(value, args)]
            return False if any(r is False for r in results) else True
        if base in ("dict", "Dict", "Mapping", "MutableMapping"):
            return isinstance(value, dict) or False
        if base == "Annotated":
            return matches(value, args[0], module, depth + 1)
        return None
    return None
