"""Tolerant parsing of model answers: code fences, prose around the JSON, common JSON damage."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

MAX_REPAIR_CHARS = 20_000
CODE_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.S)


@dataclass(frozen=True)
class ParsedAnswer:
    """``status`` is ``ok`` (clean JSON), ``extracted`` (found inside other text), ``repaired``
    (fixed by json-repair), ``truncated`` (cut by the token limit) or ``failed`` (both: ``value`` is ``None``)."""

    value: dict[str, Any] | None
    status: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


def balanced(text: str, start: int, quotes: str = '"') -> str | None:
    """The bracketed value (``{...}`` or ``[...]``) starting at ``start``, aware of strings in
    ``quotes`` and their escapes; ``None`` when it is unclosed or its brackets do not pair up."""
    pairs = {"[": "]", "{": "}"}
    stack: list[str] = []
    quote, escaped = "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in quotes:
            quote = ch
        elif ch in pairs:
            stack.append(pairs[ch])
        elif ch in "]}":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return text[start:i + 1]
    return None


def parse_answer(text: Any) -> ParsedAnswer:
    """The first JSON object in a model's answer, repaired if needed."""
    if isinstance(text, dict):
        return ParsedAnswer(text, "ok")
    if not isinstance(text, str):
        return ParsedAnswer(None, "failed", f"answer is {type(text).__name__}, not text")
    stripped = text.strip()
    try:
        value = json.loads(stripped)
        if isinstance(value, dict):
            return ParsedAnswer(value, "ok")
    except (json.JSONDecodeError, RecursionError):  # deeply nested garbage must not crash the run
        pass
    fence = CODE_FENCE.search(stripped)
    whole = stripped.find("{")
    outer = balanced(stripped, whole) if whole >= 0 else None
    if fence and outer is not None and whole < fence.start() < whole + len(outer):
        fence = None  # the ``` lies inside a JSON string of the answer: no fence
    body = fence.group(1) if fence else stripped
    start = body.find("{")
    candidate = balanced(body, start) if start >= 0 else None
    if candidate is None and fence and outer is not None:
        # a ``` inside a JSON string ended the fenced body early: take the whole object
        body, start, candidate = stripped, whole, outer
    if start < 0:
        return ParsedAnswer(None, "failed", "no JSON object in the answer")
    if candidate is not None:
        try:
            value = json.loads(candidate)
            if isinstance(value, dict):
                return ParsedAnswer(value, "extracted")
        except (json.JSONDecodeError, RecursionError):
            pass
    import json_repair

    damaged = candidate if candidate is not None else body[start:]
    if len(damaged) > MAX_REPAIR_CHARS:  # json-repair is slow on huge garbage
        return ParsedAnswer(None, "failed", f"unparseable answer longer than {MAX_REPAIR_CHARS} characters")
    try:
        value = json_repair.loads(damaged)
    except Exception as exc:  # json-repair gives up on some inputs
        return ParsedAnswer(None, "failed", f"unrepairable JSON: {exc}")
    if isinstance(value, list):  # several objects: keep the first
        value = next((v for v in value if isinstance(v, dict)), None)
    if isinstance(value, dict):
        return ParsedAnswer(value, "repaired")
    return ParsedAnswer(None, "failed", "no JSON object could be recovered")


def read_answer(text: Any, task: str, record: dict[str, Any], host: Any, truncated: bool = False) -> ParsedAnswer:
    """Parse an answer, then let plugins adjust it (``kgc_postprocess_prediction``).

    The one step between generating and using an answer: ``extract``, ``evaluate`` and the graph all
    read answers through it. ``host`` is the :class:`~kgcore.plugins.PluginHost` whose plugins run.
    An answer the token limit cut (``truncated``) is not repaired into items: unless it is whole JSON,
    it is ``truncated``.
    """
    parsed = parse_answer(text)
    if truncated and parsed.status != "ok":
        return ParsedAnswer(None, "truncated", "the answer reached the token limit (--max-new-tokens) unfinished")
    if not parsed.ok:
        return parsed
    return replace(parsed, value=host.postprocess(task, record, parsed.value))
