"""Typed options from ``KEY=VALUE`` pairs: each backend and each task declares an ``Options`` dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InputError


def parse_pairs(items: Iterable[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; ``flag`` names the option in errors."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} '{item}' is not KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def parse_options(options_cls: type, pairs: Mapping[str, Any], owner: str) -> Any:
    """``options_cls`` from pairs, strings converted to the field types; ``owner`` (``task 'RE'``) names it in errors."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(pairs) - set(fields))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for {owner}; "
                         f"valid: {', '.join(sorted(fields)) or 'none'}")
    missing = [name for name, f in fields.items() if name not in pairs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        hint = " (-m MODEL)" if missing == ["model"] else ""
        raise InputError(f"{owner} needs option(s) {', '.join(missing)}{hint}")
    values = {key: _coerce(raw, fields[key], owner) for key, raw in pairs.items()}
    try:
        return options_cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{owner}: {exc}") from None


def _coerce(raw: Any, fld: dataclasses.Field, owner: str) -> Any:
    if not isinstance(raw, str):
        return raw
    kind = (fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", "str")).replace(" ", "")
    try:
        if kind.startswith("bool"):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith(("tuple", "list")):
            return tuple(x.strip() for x in raw.split(",") if x.strip())
    except ValueError:
        raise InputError(f"option '{fld.name}' of {owner} expects {kind}, got '{raw}'") from None
    return raw
