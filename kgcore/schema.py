"""Extraction schemas: which labels (and roles) to extract, with optional descriptions and examples.

Three file forms are read:

* the reference's three JSON lines (type list, role list, ``{type: [roles]}``);
* a single JSON value: a list of labels, or ``{type: [roles]}`` (the ``datasets/`` form);
* a friendlier JSON or YAML document ``{"labels": [...], "examples": [...]}`` where each label
  is a string or ``{name, description, roles, subject_type, object_type}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError


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
        """Unique identity; SPO labels use the reference's ``subject_predicate_object`` string."""
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


_ROLE = {"oneOf": [{"type": "string"}, {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "description": {"type": "string"}}}]}

FRIENDLY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["labels"],
    "additionalProperties": False,
    "properties": {
        "task": {"type": "string"},
        "language": {"type": "string"},
        "labels": {"type": "array", "items": {"oneOf": [{"type": "string"}, {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "description": {"type": "string"},
                "roles": {"type": "array", "items": _ROLE},
                "attributes": {"type": "array", "items": _ROLE},
                "subject_type": {"type": "string"},
                "object_type": {"type": "string"},
            }}]}},
        "examples": {"type": "array", "items": {
            "type": "object", "required": ["input", "output"],
            "properties": {"input": {"type": "string"}, "output": {"type": ["object", "string"]}}}},
    },
}


def _role(value: Any) -> Role:
    return Role(value) if isinstance(value, str) else Role(value["name"], value.get("description"))


def _label(value: Any) -> Label:
    if isinstance(value, str):
        return Label(value)
    roles = value.get("roles", value.get("attributes", []))
    return Label(value["name"], value.get("description"), tuple(_role(r) for r in roles),
                 value.get("subject_type"), value.get("object_type"))


def spo_label(text: str) -> Label:
    """Parse the reference's ``subjectType_predicate_objectType`` string."""
    parts = text.split("_")
    if len(parts) < 3:
        raise ValueError(f"SPO label '{text}' is not of the form subjectType_predicate_objectType")
    return Label("_".join(parts[1:-1]), subject_type=parts[0], object_type=parts[-1])


def _unique(labels: list[Label], where: str) -> tuple[Label, ...]:
    seen: dict[str, Label] = {}
    for label in labels:
        if label.key in seen:
            if seen[label.key] != label:
                raise InputError(f"label '{label.key}' is defined twice with different content", path=where)
            continue
        seen[label.key] = label
    return tuple(seen.values())


def validate_friendly(doc: Any, where: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(FRIENDLY_SCHEMA)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"invalid schema: {err.message}", path=where, field=path)


def from_document(doc: Any, task_kind: str, where: str = "<schema>") -> Schema:
    """Build a schema from a parsed JSON/YAML document (not the 3-line form).

    ``task_kind`` is the task's schema layout: ``labels``, ``spo``, ``events`` or ``entity_types``.
    """
    if isinstance(doc, dict) and "labels" in doc:
        validate_friendly(doc, where)
        labels = [_label(v) for v in doc["labels"]]
        if task_kind == "spo":
            labels = [l if l.subject_type or l.object_type or "_" not in l.name else spo_label(l.name) for l in labels]
        return Schema(_unique(labels, where), tuple(doc.get("examples", [])), where)
    if isinstance(doc, list) and all(isinstance(v, (str, dict)) for v in doc):
        if task_kind == "spo":
            labels = [spo_label(v) if isinstance(v, str) else _label({"name": v.get("predicate", v.get("name")), **{
                k: v[k] for k in ("subject_type", "object_type", "description") if k in v}}) for v in doc]
        else:
            labels = [_label(v) for v in doc]
        return Schema(_unique(labels, where), (), where)
    if isinstance(doc, dict) and all(isinstance(v, list) for v in doc.values()):
        return Schema(_unique([Label(k, roles=tuple(_role(r) for r in v)) for k, v in doc.items()], where), (), where)
    raise InputError("unrecognised schema: expected a list of labels, {type: [roles]}, "
                     "or {\"labels\": [...]}", path=where)


def from_lines(types: list, roles: list, type_roles: dict, task_kind: str, where: str = "<schema>") -> Schema:
    """Build a schema from the reference's three lines."""
    if task_kind == "labels":
        labels = [Label(v) for v in (types or roles)]
    elif task_kind == "relations":
        labels = [Label(v) for v in (roles or types)]
    elif task_kind == "spo":
        labels = [spo_label(v) for v in types]
    else:  # events / entity_types: roles come from line 3
        names = list(types) + [t for t in type_roles if t not in types]
        if task_kind == "entity_types":
            names = list(type_roles) + [t for t in types if t not in type_roles and "_" not in t]
        labels = [Label(t, roles=tuple(Role(r) for r in type_roles.get(t, []))) for t in names]
    return Schema(_unique(labels, where), (), where)


def load_schema(path: str | Path, task_kind: str) -> Schema:
    """Read a schema file in any of the supported forms."""
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
        return from_document(doc, task_kind, where)
    try:
        return from_document(json.loads(text), task_kind, where)
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
    types, roles, type_roles = parsed
    for number, (value, kind, name) in enumerate(
            [(types, list, "type list"), (roles, list, "role list"), (type_roles, dict, "type-role dict")], 1):
        if not isinstance(value, kind):
            raise InputError(f"line {number} must be the {name} ({kind.__name__})", path=where, line=number)
    return from_lines(types, roles, type_roles, task_kind, where)
