"""Extraction schemas: which labels (and roles) to extract, with optional descriptions and examples.

Files hold the reference's three JSON lines (which the task maps to labels); a list of labels,
``{type: [roles]}`` or ``{label: description}``; or a JSON/YAML ``{"labels": [...], "examples":
[...]}`` document (its JSON Schema is ``schema-file.json``). A converted instruction's ``schema``
field is a document of the second form, read back by the same reader (``Task.items_from_schema``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .task import Task


@dataclass(frozen=True)
class Role:
    name: str
    description: str | None = None


@dataclass(frozen=True)
class Label:
    """An entity type, relation, event type (with roles) or KG entity type (with attributes)."""

    name: str
    description: str | None = None
    roles: tuple[Role, ...] = ()
    subject_type: str | None = None
    object_type: str | None = None

    @property
    def key(self) -> str:
        """Unique identity; typed relations use the reference's ``subject_predicate_object`` string."""
        if self.subject_type is not None or self.object_type is not None:
            return f"{self.subject_type}_{self.name}_{self.object_type}"
        return self.name

    @property
    def role_names(self) -> list[str]:
        return [r.name for r in self.roles]


@dataclass(frozen=True)
class Schema:
    labels: tuple[Label, ...]
    examples: tuple[dict[str, Any], ...] = ()
    source: str | None = field(default=None, compare=False)

    @property
    def has_descriptions(self) -> bool:
        return any(l.description or any(r.description for r in l.roles) for l in self.labels)

    def label(self, key: str) -> Label:
        for label in self.labels:
            if label.key == key:
                return label
        raise KeyError(key)

    def keys(self) -> list[str]:
        return [l.key for l in self.labels]


#: Keys naming a label and its roles in schema entries (instructions write ``event_type``/``arguments``,
#: ``entity_type``/``attributes`` or ``predicate``).
_NAME_KEYS = ("name", "event_type", "entity_type", "predicate")
_ROLE_KEYS = ("roles", "arguments", "attributes")


def _roles(value: Any) -> tuple[Role, ...]:
    if isinstance(value, dict):  # {role: description}
        return tuple(Role(k, v if isinstance(v, str) and v != k else None) for k, v in value.items())
    return tuple(Role(r) if isinstance(r, str) else Role(r["name"], r.get("description")) for r in value or ())


def label_from_entry(value: Any, name: str | None = None) -> Label:
    """A label from a string or a schema entry dict (``name`` when the entry is keyed by it)."""
    if isinstance(value, str):
        return Label(value)
    name = name or next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), "")
    description = value.get("description", value.get(name) if name else None)
    roles = next((value[k] for k in _ROLE_KEYS if k in value), ())
    return Label(name, description if isinstance(description, str) and description != name else None,
                 _roles(roles), value.get("subject_type"), value.get("object_type"))


def unique_labels(labels: list[Label], where: str) -> tuple[Label, ...]:
    seen: dict[str, Label] = {}
    for label in labels:
        if label.key in seen:
            if seen[label.key] != label:
                raise InputError(f"label '{label.key}' is defined twice with different content", path=where)
            continue
        seen[label.key] = label
    return tuple(seen.values())


def _validate_friendly(doc: Any, where: str) -> None:
    """Check a ``{"labels": ...}`` document against ``schema-file.json``."""
    import jsonschema

    friendly = json.loads((Path(__file__).parent / "schema-file.json").read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(friendly).iter_errors(doc))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"invalid schema: {err.message}", path=where, field=path)


def read_schema(doc: Any, task: Task | None = None, where: str = "<schema>") -> Schema:
    """A schema from a parsed JSON/YAML document (not the 3-line form); ``task`` reads each label."""
    read = task.label if task is not None else label_from_entry
    if isinstance(doc, dict) and "labels" in doc:
        _validate_friendly(doc, where)
        return Schema(unique_labels([read(v) for v in doc["labels"]], where), tuple(doc.get("examples", [])), where)
    if isinstance(doc, list) and all(isinstance(v, (str, dict)) for v in doc):
        return Schema(unique_labels([read(v) for v in doc], where), (), where)
    if isinstance(doc, dict) and all(isinstance(v, list) for v in doc.values()):  # {type: [roles]}
        return Schema(unique_labels([Label(k, roles=_roles(v)) for k, v in doc.items()], where), (), where)
    if isinstance(doc, dict) and all(isinstance(v, (str, dict)) for v in doc.values()):  # {label: description}
        labels = [label_from_entry(v, k) if isinstance(v, dict) else Label(k, v if v != k else None)
                  for k, v in doc.items()]
        return Schema(unique_labels(labels, where), (), where)
    raise InputError("unrecognised schema: expected a list of labels, {type: [roles]}, "
                     "or {\"labels\": [...]}", path=where)


def load_schema(path: str | Path, task: Task | None = None) -> Schema:
    """Read a schema file in any of the supported forms, as ``task`` maps labels."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError("schema file not found", path=where)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=where,
                             line=mark.line + 1 if mark else None) from None
        return read_schema(doc, task, where)
    try:
        return read_schema(json.loads(text), task, where)
    except json.JSONDecodeError:
        pass
    lines = [l for l in text.splitlines() if l.strip()]
    parsed = []
    for number, line in enumerate(lines[:3], 1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", path=where, line=number) from None
    if len(lines) != 3:
        raise InputError(f"a 3-line schema needs exactly 3 JSON lines, found {len(lines)}", path=where)
    for number, (value, kind, name) in enumerate(
            [(parsed[0], list, "type list"), (parsed[1], list, "role list"), (parsed[2], dict, "type-role dict")], 1):
        if not isinstance(value, kind):
            raise InputError(f"line {number} must be the {name} ({kind.__name__})", path=where, line=number)
    labels = task.schema_from_lines(*parsed) if task is not None else [Label(v) for v in parsed[0] or parsed[1]]
    return Schema(unique_labels(labels, where), (), where)
