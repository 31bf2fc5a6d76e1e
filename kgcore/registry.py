"""Components by kind and name: what each kind must be, where each component came from, lazy loading."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .errors import DuplicateComponentError, MissingDependencyError, PluginLoadError, UnknownComponentError


@dataclass(frozen=True)
class Kind:
    """A kind of component: the hook that registers it and what each one must be.

    ``base`` is a class or a lazy ``"module:attr"``; ``form`` says whether a component is a subclass
    of it (``class``), an instance (``instance``) or any callable (``callable``).
    """

    name: str
    hook: str
    base: Any = object
    form: str = "class"

    def check(self, obj: Any, component: Component) -> None:
        base = _resolve(self.base) if isinstance(self.base, str) else self.base
        name = f"{base.__module__}.{base.__qualname__}"
        ok, what = {"class": (isinstance(obj, type) and issubclass(obj, base), f"a subclass of {name}"),
                    "instance": (isinstance(obj, base), f"a {name}"),
                    "callable": (callable(obj), "callable")}[self.form]
        if not ok:
            raise PluginLoadError(f"{self.name} '{component.name}' of plugin '{component.plugin}' is {obj!r}, "
                                  f"not {what}")


#: The core's kinds; plugins add theirs with ``kgc_add_kinds``.
CORE_KINDS = (
    Kind("task", "kgc_register_tasks", "kgcore.task:Task"),
    Kind("instruction", "kgc_register_instructions", "kgcore.task:Instruction", "instance"),
    Kind("chat_template", "kgc_register_chat_templates", "kgcore.prompt:ChatTemplate", "instance"),
    Kind("backend", "kgc_register_backends", "kgcore.backend:Backend"),
    Kind("scorer", "kgc_register_scorers", "kgcore.evaluation:Scorer"),
    Kind("reader", "kgc_register_readers", form="callable"),
)


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Component:
    """One registered component and where it came from."""

    kind: Kind
    name: str
    target: Any
    summary: str = ""
    plugin: str = ""
    distribution: str = ""

    def load(self) -> Any:
        """The component itself, importing its module on first use and checking it against its kind."""
        obj = self.target
        if isinstance(obj, str) and ":" in obj:
            try:
                obj = _resolve(obj)
            except ModuleNotFoundError as exc:
                module_name, missing = obj.partition(":")[0], exc.name or ""
                if module_name == missing or module_name.startswith(missing + "."):
                    raise
                raise MissingDependencyError(
                    f"{self.kind.name} '{self.name}' needs the Python package '{missing}', which is not "
                    f"installed (from plugin '{self.plugin}'; see its extras, e.g. pip install 'kgcore[...]')"
                ) from exc
        self.kind.check(obj, self)
        return obj


class Registry:
    """Components by kind and name. Duplicates are kept aside and reported, never silently merged."""

    def __init__(self, kinds: dict[str, Kind]):
        self._items: dict[str, dict[str, Component]] = {k: {} for k in kinds}
        self.duplicates: dict[tuple[str, str], list[Component]] = {}

    def add(self, component: Component, *, replace: bool = False) -> None:
        bucket = self._items[component.kind.name]
        old = bucket.get(component.name)
        if old is not None and not replace:
            self.duplicates.setdefault((component.kind.name, component.name), [old]).append(component)
            raise DuplicateComponentError(self._duplicate_message(component.kind.name, component.name))
        bucket[component.name] = component

    def _duplicate_message(self, kind: str, name: str) -> str:
        owners = " and ".join(f"'{c.distribution or c.plugin}' (plugin {c.plugin})"
                              for c in self.duplicates[(kind, name)])
        return f"{kind} '{name}' is registered by both {owners}; uninstall one or register with replace=True"

    def get(self, kind: str, name: str) -> Component:
        if (kind, name) in self.duplicates:
            raise DuplicateComponentError(self._duplicate_message(kind, name))
        try:
            return self._items[kind][name]
        except KeyError:
            raise UnknownComponentError(kind.replace("_", " "), name, self._items.get(kind, {})) from None

    def load(self, kind: str, name: str) -> Any:
        return self.get(kind, name).load()

    def names(self, kind: str) -> list[str]:
        return sorted(self._items.get(kind, {}))

    def components(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(self._items)
        return [self._items[k][n] for k in kinds if k in self._items for n in sorted(self._items[k])]
