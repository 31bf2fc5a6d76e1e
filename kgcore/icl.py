"""In-context learning (zero- and few-shot) prompts for NER, RE, EE, RTE and DA through any backend.

The prompts reproduce the reference's ``PromptCraft`` (DeepKE ``deepke-llm`` branch,
``example/llm/src/utils/prompt.py``): a default instruction chosen by language × task × (domain,
labels), or a custom one; then, few-shot, an examples block; then the task prompt. Deliberate
differences (see ``docs/icl.md``): the English NER instruction without domain and labels is an NER
sentence (the reference holds the RE one there), ``ch``/``cn``/``zh`` all mean Chinese, labels
are stripped, RE needs its entity pair, and answers are parsed into structured results.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .backend import Backend, GenerationParams
from .errors import InputError
from .parsing import CODE_FENCE

TASKS = ("ner", "re", "ee", "rte", "da")
LANGUAGES = ("en", "zh")
_LANGUAGE_ALIASES = {"en": "en", "zh": "zh", "ch": "zh", "cn": "zh", "zh-cn": "zh", "zh_cn": "zh"}
#: File-name suffixes of example files per language, in lookup order (LLMICL uses ``_cn``, deepke-llm ``_ch``).
EXAMPLE_SUFFIXES = {"en": ("en",), "zh": ("zh", "ch", "cn")}
_PAIR_FIELDS = ("head_entity", "head_type", "tail_entity", "tail_type")

# -- instruction texts ---------------------------------------------------------------------------
# Keyed by (task, language); per task the variants "domain_labels", "domain", "labels", "plain"
# ({domain} and {labels} are filled in) and the output-format line "output".

_EN_NER = ("You are a highly intelligent and accurate {domain}Named-entity recognition(NER) system. You take Passage as "
           "input and your task is to recognize and extract specific types of {domain}named entities in that given "
           "passage and classify into a set of ")
_EN_RE = ("You are a highly intelligent and accurate {domain}relation extraction(RE) system. Given a context, a pair of "
          "head and tail entities in the context, your task is to extract the specific type of {domain}relationship "
          "between the head and tail entities")
_EN_RTE = ("You are a highly intelligent and accurate {domain}Resource Description Framework (RDF) data model. You take "
           "Passage as input and convert it into {domain}RDF triples. A triple is a set of three entities that codifies "
           "a statement about semantic data in the form of subject-predicate-object expressions.\n")
_ZH_NER_LABELS = "您是一个高度智能和精确的{domain}命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定段落中的特定类型的{named}实体，并将其分类为一组预定义的实体类型：\n{labels}\n"
_ZH_NER = "您是一个高度智能和精确的{domain}命名实体识别（NER）系统。您将文本作为输入，您的任务是识别和提取给定文章中特定类型的{domain}命名实体，并将其分类为一组实体类型。\n"
_ZH_RE = "您是一个高度智能和精确的{domain}关系抽取（RE）系统。给定上下文以及上下文中包含的一对头实体和尾实体，您的任务是提取给定头实体和尾实体间特定类型的{domain}关系"
_ZH_RTE = "您是一个高度智能和精确的{domain}资源描述框架（RDF）数据模型。您将文本作为输入，并将其转换为{domain}RDF三元组。三元组是由三个实体组成的集合，以主语-谓语-宾语表达式的形式对语义数据进行编码。\n"

INSTRUCTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("ner", "en"): {
        "domain_labels": _EN_NER + "following predefined entity types:\n{labels}\n",
        "labels": _EN_NER + "following predefined entity types:\n{labels}\n",
        "domain": _EN_NER + "entity types.\n",
        "plain": _EN_NER + "entity types.\n",  # fixed: the reference's NER_EN holds the RE sentence
        "output": "Your output format is only [{'E': type of entity from predefined entity types, "
                  "'W': entity in the input text},...] form, no other form.\n\n",
    },
    ("re", "en"): {
        "domain_labels": _EN_RE + " from candidate relations:\n{labels}\n",
        "labels": _EN_RE + " from candidate relations:\n{labels}\n",
        "domain": _EN_RE + ".\n",
        "plain": _EN_RE + ".\n",
        "output": "Your output is only the relation type, no other words.\n\n",
    },
    ("ee", "en"): {
        "domain": "You are a highly intelligent and accurate {domain}domain event extraction model. You take Passage as "
                  "input and convert it into {domain}domain events arguments.You can identify all events of target "
                  "types mentioned in the sentence, and extract corresponding event arguments playing target roles.\n",
        "plain": "You are a highly intelligent and accurate event extraction model. You take Passage as input and convert "
                 "it into events arguments. You can identify all events of target types mentioned in the sentence, and "
                 "extract corresponding event arguments playing target roles.\n",
        "output": "Your output format is only [{event_type, arguments: [{role , argument}, ...]}, ...], no other form.\n\n",
    },
    ("rte", "en"): {
        "domain": _EN_RTE,
        "plain": _EN_RTE,
        "output": "Your output format is only [[ subject, predicate, object ], ...], no other form.\n\n",
    },
    ("da", "en"): {
        "labels": "One sample in relation extraction datasets consists of a relation, a context, a pair of head and tail "
                  "entities in the context and their entity types. The head entity has the relation with the tail entity "
                  "and entities are pre-categorized as the following types: \n{labels}\n",
        "output": "",
    },
    ("ner", "zh"): {
        "domain_labels": _ZH_NER_LABELS,
        "labels": _ZH_NER_LABELS,
        "domain": _ZH_NER,
        "plain": _ZH_NER,
        "output": "您输出的格式需要为：[{'E': 预先定义的实体类型, 'W': 输入文本中的实体},...]，没有其他格式要求。\n\n",
    },
    ("re", "zh"): {
        "domain_labels": _ZH_RE + "，候选的关系类型如下：\n{labels}\n",
        "labels": _ZH_RE + "，候选的关系类型如下：\n{labels}\n",
        "domain": _ZH_RE + "。\n",
        "plain": _ZH_RE + "。\n",
        "output": "您只需要输出关系的类型即可，不需要其他的文字输出。\n\n",
    },
    ("ee", "zh"): {
        "domain": "您是一个高度智能和精确的{domain}域事件提取模型。您将文本作为输入并将其转换为{domain}域事件参数。"
                  "您可以识别句子中提到的所有目标类型的事件，并提取扮演目标角色的相应事件参数。\n",
        "plain": "您是一个高度智能和精确的事件提取模型。您将文本作为输入并将其转换为事件参数。"
                 "您可以识别句子中提到的所有目标类型的事件，并提取扮演目标角色的相应事件参数。\n",
        "output": "您的输出全部为中文，且格式为：[{事件类型, 参数: [{角色, 参数内容}, ...]}, ...]，没有其他格式要求。\n\n",
    },
    ("rte", "zh"): {
        "domain": _ZH_RTE,
        "plain": _ZH_RTE,
        "output": "您输出的格式需要为：[[ 主语, 谓语, 宾语 ], ...]，没有其他格式要求。\n\n",
    },
    ("da", "zh"): {
        "labels": "关系提取数据集中的一个样本由关系、文本、文本中的一对头实体和尾实体及它们的实体类型组成。"
                  "头实体与尾实体间存在关系，依次被预先分类为以下类型：\n{labels}\n",
        "output": "",
    },
}

_LABEL_JOIN = {"en": ", ", "zh": "，"}


def _domain_fill(task: str, language: str, domain: str) -> dict[str, str]:
    """The ``{domain}`` / ``{named}`` fillers: the reference writes "{d} domain " in English NER/RE/RTE,
    "{d} " before "domain" in English EE, "{d}域" in Chinese (and "{d}域名实体" in Chinese NER with labels)."""
    if not domain:
        return {"domain": "", "named": "命名"}
    if language == "en":
        return {"domain": f"{domain} " if task == "ee" else f"{domain} domain ", "named": ""}
    return {"domain": domain if task == "ee" else f"{domain}域", "named": f"{domain}域名"}


def default_instruction(task: str, language: str, domain: str | None = None,
                        labels: Sequence[str] | None = None) -> str:
    """The reference's default instruction (with its output-format line) for one task and language."""
    task, language = normalize_task(task), normalize_language(language)
    labels = list(labels or [])
    texts = INSTRUCTIONS[(task, language)]
    if task == "da":
        if not labels:
            raise InputError("task 'da' needs --labels: the pre-categorized entity types")
        variant = "labels"
    elif "labels" in texts:  # NER, RE: four variants
        variant = ("domain_labels" if domain and labels else "domain" if domain else
                   "labels" if labels else "plain")
    else:  # EE, RTE: two variants (labels are not part of the reference's instruction)
        variant = "domain" if domain else "plain"
    fill = {**_domain_fill(task, language, domain or ""), "labels": _LABEL_JOIN[language].join(labels)}
    return texts[variant].format(**fill) + texts["output"]


# -- task prompts and example blocks -------------------------------------------------------------

def task_prompt(task: str, language: str, text: str, pair: Mapping[str, str] | None = None) -> str:
    """The last part of the prompt: the input (RE: the context and the entity pair; DA: the relation)."""
    p = pair or {}
    if language == "en":
        if task == "re":
            return (f"Context: {text}\nThe relation between ({p['head_type']}) '{p['head_entity']}' and "
                    f"({p['tail_type']}) '{p['tail_entity']}' in the context is: ")
        if task == "da":
            return f"Generate more samples for the relation '{text}':\n"
        return f"Input: {text}\nOutput: "
    if task == "re":
        return (f"上下文：{text}\n上下文中头实体（{p['head_type']}）‘{p['head_entity']}’和尾实体（{p['tail_type']}）"
                f"‘{p['tail_entity']}’之间的关系类型是：")
    if task == "da":
        return f"请为关系‘{text}’生成更多的样例数据：\n"
    return f"输入：{text}\n输出："


# Example-block field names (the reference joins each "key: value" and ends an example with "\n").
_BLOCK = {
    "en": {"header": "Examples", "da_header": "Here are some samples for relation '{relation}'", "input": "Input",
           "output": "Output", "context": "Context",
           "re_output": "The relation between ({head_type}) '{head_entity}' and ({tail_type}) '{tail_entity}' in the "
                        "context is: {relation}",
           "da": ("Relation", "Context", "Head Entity", "Head Type", "Tail Entity", "Tail Type")},
    "zh": {"header": "示例", "da_header": "这里有一些关于关系‘{relation}’的样本", "input": "输入", "output": "输出",
           "context": "上下文",
           "re_output": "上下文头实体（{head_type}）‘{head_entity}’和尾实体（{tail_type}）‘{tail_entity}’间的关系类型是： {relation}",
           "da": ("关系", "上下文", "头实体", "头实体类型", "尾实体", "尾实体类型")},
}
_DA_FIELDS = ("relation", "context", "head_entity", "head_type", "tail_entity", "tail_type")


def examples_block(task: str, language: str, examples: Sequence[Mapping[str, Any]]) -> str:
    """The few-shot block: a header line, then one entry per example (all examples are used)."""
    if not examples:
        return ""
    words = _BLOCK[language]
    header = words["da_header"].format(relation=examples[0]["relation"]) if task == "da" else words["header"]
    lines = [f"{header}: \n"]
    for ex in examples:
        if task in ("ner", "ee", "rte"):
            # outputs are written as Python literals (str()), exactly as the reference does
            out = f"{words['output']}: {ex['output']!s}"
            lines.append((f"{words['input']}: {ex['input']}\n{out}" if ex.get("input") is not None else out) + "\n")
        elif task == "re":  # the reference puts no newline between the context and "Output"
            lines.append(f"{words['context']}: {ex['context']}{words['output']}: "
                         + words["re_output"].format(**ex) + "\n")
        else:
            lines.append("\n".join(f"{key}: {ex[name]}" for key, name in zip(words["da"], _DA_FIELDS)) + "\n")
    return "".join(lines)


def build_prompt(task: str, text: str, language: str = "en", labels: Sequence[str] | str | None = None,
                 domain: str | None = None, instruction: str | None = None,
                 examples: Sequence[Mapping[str, Any]] = (), *, head_entity: str | None = None,
                 head_type: str | None = None, tail_entity: str | None = None,
                 tail_type: str | None = None) -> str:
    """``instruction + examples block + task prompt``, as the reference's ``PromptCraft.build_prompt``.

    ``instruction`` replaces the default instruction (a newline is appended, as in the reference);
    ``examples`` (items as :func:`load_examples` returns them, or raw example-file items) make the
    prompt few-shot; none give a zero-shot prompt. RE needs the entity pair; DA needs ``labels``
    (entity types) and takes the relation to augment as ``text``.
    """
    task, language = normalize_task(task), normalize_language(language)
    labels = split_labels(labels)
    pair = {"head_entity": head_entity, "head_type": head_type, "tail_entity": tail_entity, "tail_type": tail_type}
    if task == "re":
        missing = [f"--{name.replace('_', '-')}" for name, value in pair.items() if not value]
        if missing:
            raise InputError(f"task 're' needs the entity pair: missing {', '.join(missing)}")
    if task == "da" and not labels:
        raise InputError("task 'da' needs --labels: the pre-categorized entity types")
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty input text")
    head = default_instruction(task, language, domain, labels) if instruction is None else instruction + "\n"
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
        raise _bad(f"expected an object, got {type(item).__name__}", where)
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
                raise _bad("each entity is {\"E\": type, \"W\": mention}", f"{where}.{output_keys[-1]}[{j}]")
    elif task == "rte":
        for j, triple in enumerate(output):
            if not isinstance(triple, list) or len(triple) != 3:
                raise _bad("each triple is [subject, predicate, object]", f"{where}.{output_keys[-1]}[{j}]")
    else:
        for j, event in enumerate(output):
            if not isinstance(event, Mapping) or "event_type" not in event:
                raise _bad("each event is {\"event_type\", \"arguments\": [{\"role\", \"argument\"}]}",
                           f"{where}.{output_keys[-1]}[{j}]")
    text_key = next((k for k in ("input", "text") if k in item), None)
    if text_key is None and task != "ner":
        raise _bad("missing field", f"{where}.text")
    text = item.get(text_key) if text_key else None
    if text is not None and not isinstance(text, str):
        raise _bad("expected a string", f"{where}.{text_key}")
    return {"input": text, "output": output}


def _field(item: Mapping[str, Any], names: Sequence[str], where: str, kind: type) -> Any:
    for name in names:
        if name in item:
            if not isinstance(item[name], kind):
                raise _bad(f"expected {'a string' if kind is str else 'a list'}", f"{where}.{name}")
            return item[name]
    raise _bad("missing field", f"{where}.{names[-1]}")


class _ExampleError(InputError):
    """A bad example; ``reason`` is the bare message so that the file can be added."""

    def __init__(self, reason: str, field_name: str):
        self.reason = reason
        super().__init__(reason, field=field_name)


def _bad(message: str, field_name: str) -> InputError:
    return _ExampleError(message, field_name)


# -- answer parsing ------------------------------------------------------------------------------

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


def _balanced(text: str, start: int) -> str | None:
    """The bracketed literal starting at ``start``, aware of '…' and "…" strings; ``None`` if unclosed."""
    pairs = {"[": "]", "{": "}"}
    stack, quote, escaped = [], "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in pairs:
            stack.append(pairs[ch])
        elif ch in "]}":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return text[start:i + 1]
    return None


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
            candidate = _balanced(variant, begin)
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
            etype, mention = _text(_get(item, "E", "type", "label")), _text(_get(item, "W", "entity", "mention", "text"))
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


# -- running through a backend -------------------------------------------------------------------

@dataclass
class IclResult:
    text: str
    task: str
    language: str
    prompt: str
    raw: str
    answer: IclAnswer
    pair: dict[str, str] | None = None

    def as_dict(self, with_triples: bool = True, with_raw: bool = False, with_prompt: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "task": self.task, "language": self.language}
        if self.pair:
            out.update(self.pair)
        out["result"] = self.answer.result
        if with_triples:
            out["triples"] = [list(t) for t in self.answer.triples]
        out["parse"] = self.answer.status
        if self.answer.error:
            out["parse_error"] = self.answer.error
        if self.answer.dropped:
            out["dropped"] = self.answer.dropped
        if with_raw:
            out["raw"] = self.raw
        if with_prompt:
            out["prompt"] = self.prompt
        return out


@dataclass(frozen=True)
class IclSpec:
    """What is asked, besides the text: task, language, labels, domain, instruction, examples, RE pair."""

    task: str
    language: str = "en"
    labels: tuple[str, ...] = ()
    domain: str | None = None
    instruction: str | None = None
    examples: tuple[dict[str, Any], ...] = ()
    head_entity: str | None = None
    head_type: str | None = None
    tail_entity: str | None = None
    tail_type: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "task", normalize_task(self.task))
        object.__setattr__(self, "language", normalize_language(self.language))
        object.__setattr__(self, "labels", tuple(split_labels(self.labels)))
        if self.task == "da" and not self.labels:
            raise InputError("task 'da' needs --labels: the pre-categorized entity types")
        object.__setattr__(self, "examples", tuple(normalize_example(self.task, ex, f"examples[{i}]")
                                                   for i, ex in enumerate(self.examples)))

    def for_item(self, item: str | Mapping[str, Any]) -> tuple[str, IclSpec]:
        """The text of an input item and the spec for it (a JSON object may set its own RE pair)."""
        if isinstance(item, str):
            return item, self
        text = item.get("text")
        if not isinstance(text, str):
            raise InputError("an input object needs a 'text' string", field="text")
        overrides = {k: item[k] for k in _PAIR_FIELDS if isinstance(item.get(k), str)}
        return text, replace(self, **overrides) if overrides else self

    @property
    def pair(self) -> dict[str, str] | None:
        if self.task != "re":
            return None
        return {k: getattr(self, k) for k in _PAIR_FIELDS}

    def prompt(self, text: str) -> str:
        return build_prompt(self.task, text, self.language, list(self.labels), self.domain, self.instruction,
                            self.examples, **{k: getattr(self, k) for k in _PAIR_FIELDS})

    def parse(self, answer: str) -> IclAnswer:
        return parse_icl_answer(self.task, answer, labels=self.labels, head_entity=self.head_entity,
                                tail_entity=self.tail_entity)


def icl_prompts(items: Iterable[str | Mapping[str, Any]], spec: IclSpec) -> Iterator[tuple[str, IclSpec, str]]:
    """``(text, spec, prompt)`` per input item, without running a model."""
    for item in items:
        text, item_spec = spec.for_item(item)
        yield text, item_spec, item_spec.prompt(text)


def run_icl(items: Iterable[str | Mapping[str, Any]], backend: Backend, spec: IclSpec, *,
            style: Any = None, params: GenerationParams = GenerationParams(), batch_size: int = 8,
            host: Any = None) -> Iterator[IclResult]:
    """Prompt ``backend`` with each item's ICL prompt (as the user turn, through ``style``'s chat
    template) and parse the answers. Answers are free text: no JSON schema is sent."""
    from .prediction import PromptStyle, RequestBuilder

    builder = RequestBuilder(style or PromptStyle(), None, None, False, host)
    params = replace(params, stop=tuple(dict.fromkeys(params.stop + builder.stop)))
    batch: list[tuple[str, IclSpec, str]] = []

    def flush() -> list[IclResult]:
        generations = backend.generate([builder(prompt) for _, _, prompt in batch], params)
        return [IclResult(text, s.task, s.language, prompt, g.text, s.parse(g.text), s.pair)
                for (text, s, prompt), g in zip(batch, generations, strict=True)]

    for entry in icl_prompts(items, spec):
        batch.append(entry)
        if len(batch) >= max(1, batch_size):
            yield from flush()
            batch = []
    if batch:
        yield from flush()


__all__ = ["EXAMPLE_SUFFIXES", "INSTRUCTIONS", "LANGUAGES", "TASKS", "IclAnswer", "IclResult", "IclSpec",
           "build_prompt", "default_instruction", "example_file", "examples_block", "icl_prompts", "load_examples",
           "normalize_example", "normalize_language", "normalize_task", "parse_da", "parse_ee", "parse_icl_answer",
           "parse_literal", "parse_ner", "parse_re", "parse_rte", "run_icl", "split_labels", "task_prompt"]
