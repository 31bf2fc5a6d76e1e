"""Named components contributed by plugins, resolved lazily from ``"module:attr"`` strings."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from .errors import DuplicateComponentError, MissingDependencyError, UnknownComponentError

#: Component kinds and the registration hook that fills each one.
KINDS = {
    "task": "kgc_register_tasks",
    "instruction": "kgc_register_instructions",
    "chat_template": "kgc_register_chat_templates",
    "model_family": "kgc_register_model_families",
    "backend": "kgc_register_backends",
    "trainer": "kgc_register_trainers",
    "scorer": "kgc_register_scorers",
    "reader": "kgc_register_readers",
    "exporter": "kgc_register_exporters",
}


@dataclass(frozen=True)
class Component:
    """One registered component and where it came from."""

    kind: str
    name: str
    target: Any
    summary: str = ""
    plugin: str = ""
    distribution: str = ""

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.target, str) and ":" in self.target

    def load(self) -> Any:
        """The component itself, importing its module on first use."""
        if not self.is_lazy:
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
                raise
            raise MissingDependencyError(
                f"{self.kind} '{self.name}' needs the Python package '{missing}', which is not "
                f"installed (from plugin '{self.plugin}'; see its extras, e.g. pip install 'kgcore[...]')"
            ) from exc
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


@dataclass
class Registry:
    """Components by kind and name. Duplicates are kept aside and reported, never silently merged."""

    _items: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})
    duplicates: dict[tuple[str, str], list[Component]] = field(default_factory=dict)

    def add(self, component: Component, *, replace: bool = False) -> None:
        if component.kind not in self._items:
            raise ValueError(f"unknown component kind '{component.kind}'")
        bucket = self._items[component.kind]
        old = bucket.get(component.name)
        if old is not None and not replace:
            self.duplicates.setdefault((component.kind, component.name), [old]).append(component)
            raise DuplicateComponentError(self._duplicate_message(component.kind, component.name))
        bucket[component.name] = component

    def _duplicate_message(self, kind: str, name: str) -> str:
        owners = " and ".join(
            f"'{c.distribution or c.plugin}' (plugin {c.plugin})" for c in self.duplicates[(kind, name)]
        )
        return f"{kind} '{name}' is registered by both {owners}; uninstall one or register with replace=True"

    def get(self, kind: str, name: str) -> Component:
        if (kind, name) in self.duplicates:
            raise DuplicateComponentError(self._duplicate_message(kind, name))
        try:
            return self._items[kind][name]
        except KeyError:
            raise UnknownComponentError(kind.replace("_", " "), name, self._items[kind]) from None

    def load(self, kind: str, name: str) -> Any:
        return self.get(kind, name).load()

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def components(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(self._items)
        return [self._items[k][n] for k in kinds for n in sorted(self._items[k])]
