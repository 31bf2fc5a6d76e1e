"""From instruction to backend request: the chat template, the system text and the answer's JSON Schema."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import Request
from .errors import InputError
from .plugins import PluginHost, get_host
from .task import SchemaItem, Task

#: The template name that means "the model's own chat template", which the backend applies.
AUTO = "auto"
#: Words and CJK characters: an answer list cannot hold more distinct mentions of a text than it has of these.
_UNITS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+")
MAX_ITEMS = 16
#: Where a quoted span may start and end: words, CJK characters and punctuation marks.
_PIECES = re.compile(_UNITS.pattern + r"|[^\w\s]")
#: The longest span an answer may quote, in those pieces.
LONGEST_QUOTE = 32
#: Characters that grammars (llama.cpp's) cannot spell out: a quoted span may not hold them.
UNQUOTABLE = re.compile(r'["\\\x00-\x1f\x7f]|[^\x00-\uffff]')


def quotes(text: str, longest: int = LONGEST_QUOTE) -> list[str]:
    """The strings an answer may quote from ``text``: its spans from piece to piece (at most ``longest``
    pieces) that hold no quote, backslash, control character or character beyond U+FFFF."""
    pieces = list(_PIECES.finditer(text))
    spans = (text[a.start():b.end()] for i, a in enumerate(pieces) for b in pieces[i:i + longest])
    return list(dict.fromkeys(s for s in spans if not UNQUOTABLE.search(s)))


def quoting(schema: Any, allowed: list[str]) -> Any:
    """``schema`` with each free string (``{"type": "string", ...}``) held to the ``allowed`` values."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and not {"enum", "const"} & schema.keys():
            return {"enum": allowed}
        return {key: quoting(value, allowed) for key, value in schema.items()}
    return [quoting(value, allowed) for value in schema] if isinstance(schema, list) else schema


class ChatTemplate:
    """Base of chat templates (kind ``chat_template``): how an instruction becomes a model's prompt text."""

    #: The name it is registered under (``--template NAME``).
    name: str
    #: Strings at which generation stops.
    stop_words: tuple[str, ...]

    def render(self, query: str, system: str | None = None) -> str:
        """The prompt text for ``query`` (``system=None``: the template's own system text)."""
        raise NotImplementedError


def load_chat_template(name_or_path: str | os.PathLike[str], host: PluginHost | None = None) -> ChatTemplate:
    """A registered template by name, or a template file (an existing file, or any path with a separator),
    read by the plugin that reads such files (``kgc_load_chat_template``)."""
    host = host or get_host()
    text = os.fspath(name_or_path)
    if not (Path(text).is_file() or os.sep in text or (os.altsep and os.altsep in text)):
        return host.registry.load("chat_template", text)
    if not Path(text).is_file():
        raise InputError(f"chat template file not found: {text}")
    template = host.call("kgc_load_chat_template", path=text)
    if template is None:
        raise InputError(f"no plugin reads chat template files like {text}")
    return template


@dataclass(frozen=True)
class PromptStyle:
    """How an instruction becomes a request: the chat template and an optional system text."""

    template: str = AUTO
    system: str | None = None


class RequestBuilder:
    """Builds requests: messages always, the prompt text for a named template, and (when constrained)
    the JSON Schema that a valid answer to the instruction's schema items follows."""

    def __init__(self, style: PromptStyle = PromptStyle(), constrained: bool = True, host: PluginHost | None = None,
                 quote: bool = True):
        self.style, self.constrained, self.quote = style, constrained, quote
        self.template = load_chat_template(style.template, host) if style.template != AUTO else None

    def __call__(self, instruction: str, task: Task | None = None, items: Sequence[SchemaItem] = (),
                 text: str | None = None) -> Request:
        """The request of one instruction. Its answer lists hold at most :data:`MAX_ITEMS` items, and no
        more than ``text`` (the instruction's input) has words; with ``quote``, its strings are spans of
        ``text`` (or the task's :attr:`~kgcore.task.Task.unquoted` values)."""
        system = self.style.system
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": instruction}]
        prompt = self.template.render(instruction, system=system) if self.template is not None else None
        most = MAX_ITEMS if text is None else max(1, min(MAX_ITEMS, len(_UNITS.findall(text))))
        schema = task.answer_schema(items, most) if self.constrained and task is not None and items else None
        if schema is not None and self.quote and text is not None and task.unquoted is not None:
            schema = quoting(schema, quotes(text) + list(task.unquoted)) if text.strip() else schema
        return Request(tuple(messages), prompt, schema)

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop strings of the named template (``auto``: the backend knows the model's own)."""
        return tuple(self.template.stop_words) if self.template is not None else ()
