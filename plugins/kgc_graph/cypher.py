"""Cypher literals and names, escaped: what the ``cypher`` export and the ``neo4j`` store write."""

from __future__ import annotations

import unicodedata
from typing import Any

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    invisible = ord(c) < 0x10000 and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
    return f"\\u{ord(c):04x}" if invisible else c


def cypher_string(text: str) -> str:
    """A Cypher string literal: backslashes, quotes and control, format and separator characters escaped."""
    return '"' + "".join(map(_escape, text)) + '"'


def cypher_name(name: str) -> str:
    """A backquoted Cypher name (label, relationship type, property key): backquotes doubled, backslashes written
    ``\\u005C`` (Cypher reads ``\\uXXXX`` escapes anywhere in a query, so a ``\\u0060`` in the name would close
    the quotes); an empty name is ``_``."""
    return "`" + (name or "_").replace("\\", "\\u005C").replace("`", "``") + "`"


def cypher_value(value: Any) -> str:
    """An integer, a string or a list of them as a Cypher literal."""
    if isinstance(value, list):
        return "[" + ", ".join(map(cypher_value, value)) + "]"
    return str(value) if isinstance(value, int) else cypher_string(value)
