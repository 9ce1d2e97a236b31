"""One registry helper for everything chosen by name (timm's ``@register_model`` habit).

A module that offers named choices makes one ``Registry`` and registers each choice where it
is defined; ``minbench list``, the command line's choices and every dispatch read it::

    CAMS = Registry("CAM method")

    @CAMS.register("gradcam")
    def _gradcam(): ...

    CAMS.get("gradcam")     # the object; an unknown name is a one-line UserError
    CAMS.names()            # in registration order
    CAMS.list("grad*")      # names matching a shell pattern, as timm.list_models does
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable, Generic, Iterator, TypeVar

from minbench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to objects (classes, functions, values) of one kind, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, **info: Any) -> Callable[[T], T]:
        """Decorator: register the object under ``name`` (default: its ``__name__``).

        ``info`` is free metadata kept beside it (a help line, a default, ...); see ``info``.
        """

        def add(obj: T) -> T:
            self.add(name or getattr(obj, "__name__"), obj, **info)
            return obj

        return add

    def add(self, name: str, obj: T, **info: Any) -> T:
        """Register ``obj`` under ``name``; a second object of the same name is a bug."""
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        self._info[name] = dict(info)
        return obj

    def get(self, name: str, *, what: str | None = None) -> T:
        """The object registered as ``name``; a one-line ``UserError`` (``what``: the argument
        to name in it, e.g. ``--cam foo``) with the close names otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UserError(self.unknown(name, what=what)) from None

    def unknown(self, name: Any, *, what: str | None = None) -> str:
        """The one-line message for a name this registry does not hold."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return f"{what or repr(name)}: unknown {self.kind} ({hint}known: {', '.join(self._entries)})"

    def info(self, name: str) -> dict[str, Any]:
        """The metadata registered with ``name``."""
        self.get(name)
        return dict(self._info[name])

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._entries)

    def list(self, pattern: str | None = None) -> list[str]:
        """Registered names matching a shell pattern (``*`` and ``?``; case-insensitive)."""
        if not pattern:
            return self.names()
        return [n for n in self._entries if fnmatch.fnmatch(n.lower(), pattern.lower())]

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
