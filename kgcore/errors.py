"""Errors that kgc shows to users as one clear line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KGCError(Exception):
    """Base class of every error kgc raises on purpose."""


class InputError(KGCError):
    """Bad user input, located by file, line and field where known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field '{field}')" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")


class PluginLoadError(KGCError):
    """A plugin could not be imported or registered (strict mode)."""


class UnknownComponentError(KGCError, KeyError):
    """A component name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = [k for k in known if k.lower() == name.lower()]  # a case slip is the likeliest
        close += [k for k in difflib.get_close_matches(name, known, n=3, cutoff=0.5) if k not in close]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {kind} '{name}'.{hint} Available: {', '.join(known) or 'none'}.")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateComponentError(KGCError):
    """Two plugins registered the same component name."""


class MissingDependencyError(KGCError):
    """A component needs an optional dependency that is not installed."""
