"""Parsing of free-text ICL answers: Python/JSON literals (NER, EE, RTE), relation names (RE), samples (DA)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kgcore.parsing import CODE_FENCE, balanced

from .prompts import normalize_task, split_labels


@dataclass
class IclAnswer:
    """A parsed answer. ``status``: ``ok`` (the whole answer is the literal), ``extracted`` (found in
    other text), ``repaired`` (fixed by json-repair) or ``failed`` (``result`` is ``None``)."""

    result: Any
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    status: str = "ok"
    error: str = ""
    dropped: int = 0  # malformed items left out of ``result``

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def _load_literal(text: str) -> Any:
    """JSON or a Python literal; raises ``ValueError`` when it is neither."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def parse_literal(answer: str, opener: str = "[") -> tuple[Any, str, str]:
    """The first list (or object) literal of an answer: ``(value, status, error)``.

    Accepts JSON and Python literals (the reference's prompts show ``str()`` of lists, so models
    answer with single quotes), code fences and prose around the literal, and repairs damaged
    literals with json-repair.
    """
    if not isinstance(answer, str):
        return None, "failed", f"answer is {type(answer).__name__}, not text"
    stripped = answer.strip()
    if not stripped:
        return None, "failed", "empty answer"
    for whole, status in ((stripped, "ok"), (f"[{stripped}]", "extracted")):
        if whole is not stripped and not (opener == "[" and stripped.startswith("{")):
            continue  # several bare objects in a row ({...}, {...}) read as one list
        try:
            value = _load_literal(whole)
        except ValueError:
            continue
        if isinstance(value, (list, dict)):  # a tuple means several literals in a row: wrapped next
            return value, status, ""
    fence = CODE_FENCE.search(stripped)
    body = fence.group(1).strip() if fence else stripped
    openers = opener + ("{" if opener == "[" else "")
    starts = [i for i, ch in enumerate(body) if ch in openers][:20]
    if not starts:
        return None, "failed", f"no '{opener}' in the answer"
    start = starts[0]
    # single-quoted strings with an unescaped apostrophe inside a word ('Alzheimer's disease') are
    # read with that apostrophe masked
    masked = _APOSTROPHE.sub(_MASK, body)
    for variant, status in ((body, "extracted"), (masked, "repaired")):
        for begin in starts:  # prose may hold brackets before the answer: "Entities [below]: [...]"
            candidate = balanced(variant, begin, quotes="'\"")
            if candidate is None:
                break  # unclosed: what follows lies inside it; leave it to the repair
            try:
                value = _load_literal(candidate)
            except ValueError:
                continue
            if isinstance(value, (list, tuple, dict)):
                return _restore_apostrophes(value), status, ""
    import json_repair

    end = masked.rfind("]" if masked[start] == "[" else "}")
    chunk = masked[start:end + 1] if end > start else masked[start:]
    try:
        value = _restore_apostrophes(json_repair.loads(chunk))
    except Exception as exc:  # json-repair gives up on some inputs
        return None, "failed", f"unrepairable answer: {exc}"
    if value in ("", None):
        return None, "failed", "no literal could be recovered"
    return value, "repaired", ""


_APOSTROPHE = re.compile(r"(?<=[^\W_])'(?=[^\W_])")
_MASK = "\ue000"  # a private-use character stands in for the masked apostrophe


def _restore_apostrophes(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_MASK, "'")
    if isinstance(value, (list, tuple)):
        return [_restore_apostrophes(v) for v in value]
    if isinstance(value, dict):
        return {_restore_apostrophes(k): _restore_apostrophes(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _get(item: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in item:
            return item[name]
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def parse_ner(answer: str) -> IclAnswer:
    """``[{'E': type, 'W': mention}, ...]`` → the same list (clean strings) and ``(W, "type", E)`` triples."""
    value, status, error = parse_literal(answer)
    if status == "failed":
        return IclAnswer(None, [], status, error)
    entities, dropped = [], 0
    for item in _items(value):
        if isinstance(item, Mapping):
            etype = _text(_get(item, "E", "type", "label"))
            mention = _text(_get(item, "W", "entity", "mention", "text"))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            etype, mention = _text(item[0]), _text(item[1])
        else:
            etype = mention = None
        if etype and mention:
            entities.append({"E": etype, "W": mention})
        else:
            dropped += 1
    return IclAnswer(entities, [(e["W"], "type", e["E"]) for e in entities], status, "", dropped)


def parse_rte(answer: str) -> IclAnswer:
    """``[[subject, predicate, object], ...]`` → the list and the same triples."""
    value, status, error = parse_literal(answer)
    if status == "failed":
        return IclAnswer(None, [], status, error)
    items = _items(value)
    if len(items) == 3 and all(isinstance(x, str) for x in items):  # one bare triple
        items = [items]
    triples, dropped = [], 0
    for item in items:
        if isinstance(item, Mapping):
            item = [_get(item, "subject", "head", "主语"), _get(item, "predicate", "relation", "谓语"),
                    _get(item, "object", "tail", "宾语")]
        parts = [_text(x) for x in item] if isinstance(item, (list, tuple)) and len(item) == 3 else []
        if len(parts) == 3 and all(parts):
            triples.append(tuple(parts))
        else:
            dropped += 1
    return IclAnswer([list(t) for t in triples], triples, status, "", dropped)


def parse_ee(answer: str) -> IclAnswer:
    """``[{event_type, arguments: [{role, argument}]}]`` (English or the Chinese prompt's keys
    事件类型/参数/角色/参数内容; ``arguments`` may also be ``{role: argument}``) → the normalized list
    and ``(event_type, role, argument)`` triples."""
    value, status, error = parse_literal(answer)
    if status == "failed":
        return IclAnswer(None, [], status, error)
    events, triples, dropped = [], [], 0
    for item in _items(value):
        etype = _text(_get(item, "event_type", "事件类型", "type")) if isinstance(item, Mapping) else None
        if not etype:
            dropped += 1
            continue
        raw_args = _get(item, "arguments", "参数", "args")
        if isinstance(raw_args, Mapping):
            raw_args = [{"role": k, "argument": v} for k, vs in raw_args.items() for v in _items(vs)]
        arguments = []
        for arg in _items(raw_args) if raw_args is not None else []:
            role = _text(_get(arg, "role", "角色")) if isinstance(arg, Mapping) else None
            text = _text(_get(arg, "argument", "参数内容", "text")) if isinstance(arg, Mapping) else None
            if role and text:
                arguments.append({"role": role, "argument": text})
                triples.append((etype, role, text))
            else:
                dropped += 1
        events.append({"event_type": etype, "arguments": arguments})
    return IclAnswer(events, triples, status, "", dropped)


_RE_LEAD = re.compile(r"^(?:output|answer|relation(?: type)?|输出|答案|关系(?:类型)?)\s*[:：]\s*", re.IGNORECASE)
_RE_SENTENCE = re.compile(r"^.*?(?:in the context is|之间的关系类型是|间的关系类型是)\s*[:：]?\s*", re.IGNORECASE | re.DOTALL)


def parse_re(answer: str, labels: Sequence[str] = (), head: str | None = None, tail: str | None = None) -> IclAnswer:
    """A relation name: the first non-empty line, without echoed prompt text, quotes or a final stop.

    With candidate ``labels`` the answer must name one (case-insensitive; a single label found inside
    a longer answer counts as ``extracted``), else the parse fails. Triples: ``(head, relation, tail)``.
    """
    if not isinstance(answer, str) or not answer.strip():
        return IclAnswer(None, [], "failed", "empty answer")
    line = next(x for x in answer.strip().splitlines() if x.strip()).strip()
    cleaned = _RE_SENTENCE.sub("", _RE_LEAD.sub("", line)).strip().strip("\"'‘’“”`*").strip()
    cleaned = cleaned.rstrip(".。").strip().strip("\"'‘’“”`*").strip()
    status = "ok" if cleaned == answer.strip() else "extracted"
    relation = cleaned or None
    if labels:
        by_lower = {label.lower(): label for label in labels}
        if relation is not None and relation.lower() in by_lower:
            relation = by_lower[relation.lower()]
        else:
            found = [label for label in labels if re.search(
                rf"(?<!\w){re.escape(label)}(?!\w)", answer, re.IGNORECASE)] if answer else []
            found = [f for f in found if not any(f != g and f.lower() in g.lower() for g in found)]
            if len(found) != 1:
                return IclAnswer(None, [], "failed",
                                 "the answer names none of the candidate relations" if not found
                                 else f"the answer names several relations: {', '.join(found)}")
            relation, status = found[0], "extracted"
    if not relation:
        return IclAnswer(None, [], "failed", "no relation in the answer")
    triples = [(head, relation, tail)] if head and tail else []
    return IclAnswer(relation, triples, status)


_DA_KEYS = {"relation": ("relation", "关系"), "context": ("context", "上下文", "文本", "text"),
            "head_entity": ("head entity", "头实体"), "head_type": ("head type", "头实体类型"),
            "tail_entity": ("tail entity", "尾实体"), "tail_type": ("tail type", "尾实体类型")}
_DA_LINE = re.compile(r"^\s*[-*\d.)\s]*(?P<key>[^:：\n]{1,20}?)\s*[:：]\s*(?P<value>.*?)\s*$")


def parse_da(answer: str) -> IclAnswer:
    """Free text; samples written in the examples' ``Key: value`` lines (Relation, Context, Head Entity,
    ...; or the Chinese keys) are also collected, and complete ones give ``(head, relation, tail)``."""
    if not isinstance(answer, str) or not answer.strip():
        return IclAnswer(None, [], "failed", "empty answer")
    lookup = {alias: name for name, aliases in _DA_KEYS.items() for alias in aliases}
    samples: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in answer.splitlines():
        m = _DA_LINE.match(line)
        name = lookup.get(m.group("key").strip().lower()) if m else None
        if name is None:
            continue
        if name in current:  # a repeated key starts the next sample
            samples.append(current)
            current = {}
        current[name] = m.group("value").strip()
    if current:
        samples.append(current)
    triples = [(s["head_entity"], s["relation"], s["tail_entity"]) for s in samples
               if s.get("head_entity") and s.get("relation") and s.get("tail_entity")]
    return IclAnswer({"text": answer.strip(), "samples": samples}, triples, "ok")


def parse_icl_answer(task: str, answer: str, *, labels: Sequence[str] = (), head_entity: str | None = None,
                     tail_entity: str | None = None) -> IclAnswer:
    """Parse a model's answer to an ICL prompt of ``task``."""
    task = normalize_task(task)
    if task == "ner":
        return parse_ner(answer)
    if task == "rte":
        return parse_rte(answer)
    if task == "ee":
        return parse_ee(answer)
    if task == "re":
        return parse_re(answer, split_labels(labels), head_entity, tail_entity)
    return parse_da(answer)
