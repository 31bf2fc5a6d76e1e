"""From instruction to backend request: the chat template, the system text and the answer's JSON Schema."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .backend import Request
from .errors import InputError
from .plugins import PluginHost, get_host
from .task import SchemaItem, Task

#: The template name that means "the model's own chat template", which the backend applies.
AUTO = "auto"


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

    def __init__(self, style: PromptStyle = PromptStyle(), constrained: bool = True, host: PluginHost | None = None):
        self.style, self.constrained = style, constrained
        self.template = load_chat_template(style.template, host) if style.template != AUTO else None

    def __call__(self, instruction: str, task: Task | None = None, items: Sequence[SchemaItem] = ()) -> Request:
        system = self.style.system
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": instruction}]
        prompt = self.template.render(instruction, system=system) if self.template is not None else None
        schema = task.answer_schema(items) if self.constrained and task is not None and items else None
        return Request(tuple(messages), prompt, schema)

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop strings of the named template (``auto``: the backend knows the model's own)."""
        return tuple(self.template.stop_words) if self.template is not None else ()
