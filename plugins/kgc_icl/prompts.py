"""ICL prompts (the texts live in ``prompts.yaml``) and the reference's example files."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kgcore.errors import InputError

TASKS = ("ner", "re", "ee", "rte", "da")
LANGUAGES = ("en", "zh")
_LANGUAGE_ALIASES = {"en": "en", "zh": "zh", "ch": "zh", "cn": "zh", "zh-cn": "zh", "zh_cn": "zh"}
#: File-name suffixes of example files per language, in lookup order (LLMICL uses ``_cn``, deepke-llm ``_ch``).
EXAMPLE_SUFFIXES = {"en": ("en",), "zh": ("zh", "ch", "cn")}
_DA_NEEDS_LABELS = "task 'da' needs --labels: the pre-categorized entity types"


@functools.cache
def _prompts() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(Path(__file__).with_name("prompts.yaml").read_text(encoding="utf-8"))


def prompt_texts(language: str) -> dict[str, Any]:
    """The prompt texts of one language, from ``prompts.yaml``."""
    return _prompts()[normalize_language(language)]


def default_instruction(task: str, language: str, domain: str | None = None,
                        labels: Sequence[str] | None = None) -> str:
    """The reference's default instruction (with its answer-format line) for one task and language."""
    task, texts = normalize_task(task), prompt_texts(language)
    labels = list(labels or [])
    if task == "da" and not labels:
        raise InputError(_DA_NEEDS_LABELS)
    variants = texts["instructions"][task]
    applying = {"domain_labels": domain and labels, "labels": labels, "domain": domain, "plain": True}
    variant = next(name for name, applies in applying.items() if applies and name in variants)
    return variants[variant].format(
        domain=domain or "", domain_prefix=texts["domain_prefix"].format(domain=domain) if domain else "",
        labels=texts["label_separator"].join(labels)) + variants["answer_format"]


def task_prompt(task: str, language: str, text: str, pair: Mapping[str, str | None] | None = None) -> str:
    """The last part of the prompt: the input (RE: the context and the entity pair; DA: the relation)."""
    return prompt_texts(language)["task_prompts"][normalize_task(task)].format(text=text, **(pair or {}))


def examples_block(task: str, language: str, examples: Sequence[Mapping[str, Any]]) -> str:
    """The few-shot block of normalized examples: a header, then one entry per example (all are used)."""
    if not examples:
        return ""
    task, words = normalize_task(task), prompt_texts(language)["examples"]
    entries = [(words["output_only"] if ex.get("input", "") is None else words["entry"][task]).format(**ex)
               for ex in examples]
    return words["header"][task].format(**examples[0]) + "".join(entries)


def build_prompt(task: str, text: str, language: str = "en", labels: Sequence[str] | str | None = None,
                 domain: str | None = None, instruction: str | None = None,
                 examples: Sequence[Mapping[str, Any]] = (), *, head_entity: str | None = None,
                 head_type: str | None = None, tail_entity: str | None = None,
                 tail_type: str | None = None) -> str:
    """``instruction + examples block + task prompt``, as the reference's ``PromptCraft.build_prompt``.

    ``instruction`` replaces the default instruction; ``examples`` (as :func:`load_examples` returns
    them, or raw example-file items) make the prompt few-shot. RE needs the entity pair; DA needs
    ``labels`` (entity types) and takes the relation to augment as ``text``.
    """
    task, language = normalize_task(task), normalize_language(language)
    labels = split_labels(labels)
    pair = {"head_entity": head_entity, "head_type": head_type, "tail_entity": tail_entity, "tail_type": tail_type}
    if task == "re":
        missing = [f"--{name.replace('_', '-')}" for name, value in pair.items() if not value]
        if missing:
            raise InputError(f"task 're' needs the entity pair: missing {', '.join(missing)}")
    if task == "da" and not labels:
        raise InputError(_DA_NEEDS_LABELS)
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty input text")
    head = (default_instruction(task, language, domain, labels) if instruction is None
            else _prompts()["custom_instruction"].format(instruction=instruction))
    items = [normalize_example(task, ex, f"examples[{i}]") for i, ex in enumerate(examples or ())]
    return head + examples_block(task, language, items) + task_prompt(task, language, text, pair)


# -- names and labels ----------------------------------------------------------------------------

def normalize_task(task: str) -> str:
    name = str(task).strip().lower()
    if name not in TASKS:
        raise InputError(f"unknown ICL task '{task}'; choose one of {', '.join(TASKS)}")
    return name


def normalize_language(language: str) -> str:
    name = _LANGUAGE_ALIASES.get(str(language).strip().lower())
    if name is None:
        raise InputError(f"unknown language '{language}'; use en or zh (ch and cn are accepted for zh)")
    return name


def split_labels(labels: Sequence[str] | str | None) -> list[str]:
    """Labels from a list or a string split on ``,`` and ``，``; stripped, empties dropped."""
    if labels is None:
        return []
    parts = re.split(r"[,，]", labels) if isinstance(labels, str) else [str(x) for x in labels]
    return [p.strip() for p in parts if p and p.strip()]


# -- example files -------------------------------------------------------------------------------

def example_file(task: str, language: str, path: str | Path) -> Path:
    """The example file for a task and language: ``path`` itself, or ``{task}_{suffix}.json`` inside it
    (suffix ``en``; for Chinese ``zh``, ``ch`` (deepke-llm) or ``cn`` (LLMICL), the first that exists)."""
    task, language = normalize_task(task), normalize_language(language)
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise InputError("no such file or folder", path=str(path))
    names = [f"{task}_{suffix}.json" for suffix in EXAMPLE_SUFFIXES[language]]
    for name in names:
        if (path / name).is_file():
            return path / name
    raise InputError(f"no example file for task '{task}' and language '{language}' (looked for "
                     f"{', '.join(names)})", path=str(path))


def load_examples(task: str, language: str, path: str | Path) -> list[dict[str, Any]]:
    """Few-shot examples from a reference example file (or a folder of them), normalized:

    * NER: ``{"samples": [{"text", "data": [{"E", "W"}]}]}`` → ``{"input", "output"}``; LLMICL's
      NER samples have no ``text``: they become output-only examples (``input`` is ``None``);
    * EE: ``[{"text", "event_list"}]`` and RTE: ``[{"text", "labels": [[s, p, o]]}]`` → ``{"input", "output"}``;
    * RE and DA: ``[{"text", "head_type", "head_entity", "tail_type", "tail_entity", "relation"}]``
      → the same with ``context`` for ``text``.

    Errors name the file and the field (``samples[2].data``).
    """
    task = normalize_task(task)
    file = example_file(task, language, path)
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=str(file), line=exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", path=str(file)) from None
    prefix = ""
    if task == "ner" and isinstance(data, dict):
        if "samples" not in data:
            raise InputError("an NER example file is {\"samples\": [...]}", path=str(file), field="samples")
        data, prefix = data["samples"], "samples"
    if not isinstance(data, list):
        raise InputError(f"expected a JSON list of examples, got {type(data).__name__}", path=str(file),
                         field=prefix or None)
    if not data:
        raise InputError("the example file holds no examples", path=str(file), field=prefix or None)
    try:
        return [normalize_example(task, item, f"{prefix}[{i}]") for i, item in enumerate(data)]
    except _ExampleError as exc:
        raise InputError(exc.reason, path=str(file), field=exc.field) from None


def normalize_example(task: str, item: Any, where: str = "example") -> dict[str, Any]:
    """One example in the form the prompt uses; accepts file items and already-normalized ones."""
    task = normalize_task(task)
    if not isinstance(item, Mapping):
        raise _ExampleError(f"expected an object, got {type(item).__name__}", where)
    if task in ("re", "da"):
        out = {"context": _field(item, ("context", "text"), where, str)}
        for name in ("head_type", "head_entity", "tail_type", "tail_entity", "relation"):
            out[name] = _field(item, (name,), where, str)
        return out
    output_keys = {"ner": ("output", "data"), "ee": ("output", "event_list"), "rte": ("output", "labels")}[task]
    output = _field(item, output_keys, where, list)
    if task == "ner":
        for j, entity in enumerate(output):
            if not isinstance(entity, Mapping) or not {"E", "W"} <= set(entity):
                raise _ExampleError("each entity is {\"E\": type, \"W\": mention}", f"{where}.{output_keys[-1]}[{j}]")
    elif task == "rte":
        for j, triple in enumerate(output):
            if not isinstance(triple, list) or len(triple) != 3:
                raise _ExampleError("each triple is [subject, predicate, object]", f"{where}.{output_keys[-1]}[{j}]")
    else:
        for j, event in enumerate(output):
            if not isinstance(event, Mapping) or "event_type" not in event:
                raise _ExampleError("each event is {\"event_type\", \"arguments\": [{\"role\", \"argument\"}]}",
                                    f"{where}.{output_keys[-1]}[{j}]")
    text_key = next((k for k in ("input", "text") if k in item), None)
    if text_key is None and task != "ner":
        raise _ExampleError("missing field", f"{where}.text")
    text = item.get(text_key) if text_key else None
    if text is not None and not isinstance(text, str):
        raise _ExampleError("expected a string", f"{where}.{text_key}")
    return {"input": text, "output": output}


def _field(item: Mapping[str, Any], names: Sequence[str], where: str, kind: type) -> Any:
    for name in names:
        if name in item:
            if not isinstance(item[name], kind):
                raise _ExampleError(f"expected {'a string' if kind is str else 'a list'}", f"{where}.{name}")
            return item[name]
    raise _ExampleError("missing field", f"{where}.{names[-1]}")


class _ExampleError(InputError):
    """A bad example; ``reason`` is the bare message so that the file can be added."""

    def __init__(self, reason: str, field_name: str):
        self.reason = reason
        super().__init__(reason, field=field_name)
