"""From instruction to backend request: the chat template, the system text and the answer's JSON Schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .backend import Request
from .chat import AUTO, load_chat_template
from .plugins import PluginHost, get_host
from .task import SchemaItem, Task


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
        self.template = None
        if style.template != AUTO:
            self.template = load_chat_template(style.template, (host or get_host()).registry)

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
