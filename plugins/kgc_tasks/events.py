"""Event extraction: full events (EE), types and triggers (EET), arguments of given triggers (EEA)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from kgcore import ConvertOptions, InputError, Label, SchemaItem
from kgcore.sampling import order_labels
from kgcore.task import STRING, object_schema, unique

from .annotations import Annotated, Event, labelled_strings
from .base import STRING_OR_LIST, AnnotatedTask, MentionOptions, labels_with_roles, position_sorted, sample_members

NAN = "NAN"

_EVENT = {
    "type": "object", "required": ["event_type"],
    "properties": {
        "event_type": {"type": "string"},
        "event_trigger": {"type": "string"},
        "arguments": {"type": "array", "items": {
            "type": "object", "required": ["argument", "role"],
            "properties": {"argument": {"type": "string"}, "role": {"type": "string"}}}},
    },
}


def clean_events(sample: Annotated) -> list[Event]:
    """The reference's label rules: drop empty events and arguments; a missing trigger is ``NAN``."""
    events = []
    for event in sample.events:
        arguments = tuple(a for a in event.arguments if a.text)
        if not event.trigger and not arguments:
            continue
        events.append(Event(event.type, event.trigger or NAN, arguments))
    return events


def event_answer(event: Event, roles: tuple[str, ...]) -> dict[str, Any]:
    """``{"trigger", "arguments": {role: value | [values] | "NAN"}}``; ``{}`` when no role is filled."""
    arguments: dict[str, Any] = {}
    for role in roles:
        values = unique([a.text for a in event.arguments if a.role == role])
        arguments[role] = values[0] if len(values) == 1 else (values or NAN)
    if all(v == NAN for v in arguments.values()):
        arguments = {}
    return {"trigger": event.trigger, "arguments": arguments}


def event_tuples(answer: dict[str, Any]) -> dict[str, list[tuple]]:
    """Events ``(type, trigger)`` and arguments ``(type, argument, role)`` from an EE/EEA answer."""
    events, arguments = [], []
    for event_type, values in answer.items():
        if not isinstance(values, list):
            continue
        for value in values:
            if not isinstance(value, dict):
                continue
            trigger = value.get("trigger", "")
            if isinstance(trigger, str):
                events.append((event_type, trigger))
            if "arguments" in value or "trigger" in value:
                args = value.get("arguments", {})
            else:  # IEPile's EEA answers: {role: value} without trigger/arguments keys
                args = value
            if isinstance(args, list):  # tolerate [{"role": r, "argument": a}]
                args = [(a.get("role"), a.get("argument")) for a in args if isinstance(a, dict)]
            elif isinstance(args, dict):
                args = list(args.items())
            else:
                continue
            for role, filler in args:
                for text in filler if isinstance(filler, list) else [filler]:
                    if isinstance(text, str) and isinstance(role, str) and text and text != NAN:
                        arguments.append((event_type, text, role))
    return {"event": events, "argument": arguments}


class EE(AnnotatedTask):
    """Events as ``{type: [{"trigger", "arguments": {role: value}}]}``."""

    name = "EE"
    graph_shape = "events"
    unquoted = (NAN,)
    annotation_key = "event"
    annotation_schema = _EVENT
    default_split_num = 4
    metrics = ("event", "argument")

    def schema_from_lines(self, types, roles, type_roles):
        return labels_with_roles(list(types) + [t for t in type_roles if t not in types], type_roles)

    def positive_keys(self, sample: Annotated, schema) -> list[str]:
        return unique([e.type for e in clean_events(sample)])

    def sample_roles(self, label: Label, sample: Annotated, opts: ConvertOptions, rng: random.Random) -> tuple[str, ...]:
        roles = label.role_names
        if opts.is_train and opts.neg_schema < 1:
            present = {a.role for e in clean_events(sample) if e.type == label.name for a in e.arguments}
            roles = sample_members(roles, present, opts, rng)
        if opts.order == "random":
            roles = list(roles)
            rng.shuffle(roles)
        return tuple(roles)

    def item(self, label, sample, opts, rng):
        return SchemaItem(label, self.sample_roles(label, sample, opts, rng))

    def schema_entry(self, item: SchemaItem, opts: ConvertOptions, descriptions: bool) -> dict[str, Any]:
        trigger: Any = True
        if descriptions:
            roles = {r: (next((x.description for x in item.label.roles if x.name == r), None) or r) for r in item.roles}
            return {item.name: item.label.description or item.name, "trigger": trigger, "arguments": roles}
        return {"event_type": item.name, "trigger": trigger, "arguments": list(item.roles)}

    def schema_value(self, items, opts, descriptions):
        if descriptions:
            return {i.name: self.schema_entry(i, opts, True) for i in items}
        return [self.schema_entry(i, opts, False) for i in items]

    def target(self, sample, items, opts):
        events = clean_events(sample)
        out = {}
        for item in items:
            matching = position_sorted([e for e in events if e.type == item.name], sample.text, key=lambda e: e.trigger)
            out[item.name] = [event_answer(e, item.roles) for e in matching]
        return out

    def answer_value_schema(self, item, max_items):
        arguments = object_schema({r: STRING_OR_LIST for r in item.roles}, required=False)
        event = object_schema({"trigger": STRING, "arguments": arguments})
        return {"type": "array", "items": event, "maxItems": max_items}

    def triples(self, answer):
        found = event_tuples(answer)
        return [(trigger, "event type", etype) for etype, trigger in found["event"]] + [
            (etype, role, text) for etype, text, role in found["argument"]]

    def gold(self, annotations):
        events, arguments = [], []
        for a in annotations:  # the training targets' rules (clean_events): a perfect answer scores 100
            args = unique([(a.get("event_type"), x.get("argument"), x.get("role"))
                           for x in a.get("arguments") or [] if x.get("argument")])
            if not a.get("event_trigger") and not args:
                continue
            events.append((a.get("event_type"), a.get("event_trigger") or NAN))
            arguments += args
        return {"event": events, "argument": arguments}

    def predicted(self, answer):
        return event_tuples(answer)

    def mentions(self, answer):
        return [(text, label) for text, label in super().mentions(answer) if text != NAN]


@dataclass(frozen=True)
class EEAOptions:
    #: Test instructions name the gold triggers, as training ones do (off: as the reference's test files).
    eea_test_triggers: bool = True


class EEA(EE):
    """Arguments of given events: the schema names the gold event types and their triggers."""

    name = "EEA"
    Options = EEAOptions

    def prepare(self, record):
        record = super().prepare(record)
        return record if record.get(self.annotation_key) else None

    def select(self, sample, schema, opts, rng):
        if opts.is_train and opts.hard_negatives is not None and not (
                {r for label in schema.labels for r in label.role_names} & set(opts.hard_negatives)):
            raise InputError("EEA gives each text's event types and triggers, so its hard negatives are argument "
                             "roles; the hard-negative dictionary names no role of the schema (a dictionary of "
                             "event types fits EE and EET)")
        gold = {e.type for e in clean_events(sample)}
        keys = [k for k in schema.keys() if k in gold]
        if not keys:
            return None
        return [self.item(schema.label(k), sample, opts, rng) for k in order_labels(keys, opts.order, rng)]

    def item(self, label, sample, opts, rng):
        triggers = None
        if opts.is_train or self.options.eea_test_triggers:
            triggers = tuple(e.trigger for e in clean_events(sample) if e.type == label.name)
        return SchemaItem(label, self.sample_roles(label, sample, opts, rng), triggers)

    def schema_entry(self, item, opts, descriptions):
        entry = super().schema_entry(item, opts, descriptions)
        if item.triggers is None:
            entry.pop("trigger")
        else:
            entry["trigger"] = list(item.triggers)
        return entry


class EET(AnnotatedTask):
    """Event types and triggers as ``{type: [trigger, ...]}``."""

    name = "EET"
    graph_shape = "events"
    annotation_key = "event"
    annotation_schema = _EVENT
    default_split_num = 4
    metrics = ("trigger",)
    Options = MentionOptions

    def positive_keys(self, sample, schema):
        return unique([e.type for e in sample.events if e.trigger])

    def target(self, sample, items, opts):
        return {item.name: self.ordered([e.trigger for e in sample.events if e.type == item.name and e.trigger],
                                        sample.text) for item in items}

    def triples(self, answer):
        return [(trigger, "event type", etype) for trigger, etype in self.predicted(answer)["trigger"]]

    def mentions(self, answer):
        return labelled_strings(answer)

    def gold(self, annotations):
        return {"trigger": [(a.get("event_trigger"), a.get("event_type")) for a in annotations if a.get("event_trigger")]}

    def predicted(self, answer):
        return {"trigger": labelled_strings(answer)}
