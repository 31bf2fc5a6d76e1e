"""The plugin host: entry points of the ``kgc`` group, the hooks they implement and the components they register.

A plugin that fails to import or register is recorded with its error and skipped, so it never
breaks another command; ``strict=True`` (or ``KGC_STRICT_PLUGINS=1``) raises instead. A plugin
that implements a hook no spec declares (a misspelled name) is an error in strict mode and a
warning otherwise. ``KGC_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name;
``KGC_TRACE_HOOKS=1`` prints every hook call. Every hook, registration included, is called
through pluggy.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata as metadata
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import pluggy

from . import hookspecs
from .errors import (DuplicateComponentError, InputError, MissingDependencyError, PluginLoadError,
                     UnknownComponentError)

ENTRY_POINT_GROUP = "kgc"


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
        ok = {"class": lambda: isinstance(obj, type) and issubclass(obj, base),
              "instance": lambda: isinstance(obj, base), "callable": lambda: callable(obj)}[self.form]()
        if not ok:
            what = {"class": f"a subclass of {base.__module__}.{base.__qualname__}", "callable": "callable",
                    "instance": f"a {base.__module__}.{base.__qualname__}"}[self.form]
            raise PluginLoadError(f"{self.name} '{component.name}' of plugin '{component.plugin}' is "
                                  f"{obj!r}, not {what}")


#: The core's kinds; plugins add theirs with ``kgc_add_kinds``.
CORE_KINDS = (
    Kind("task", "kgc_register_tasks", "kgcore.task:Task"),
    Kind("instruction", "kgc_register_instructions", "kgcore.task:Instruction", "instance"),
    Kind("chat_template", "kgc_register_chat_templates", "kgcore.chat:ChatTemplate", "instance"),
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
        self.kinds = kinds
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


@dataclass
class PluginInfo:
    """A row of ``kgc plugins``."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class PluginHost:
    """A pluggy manager plus the registry of components its plugins contribute."""

    def __init__(self, *, strict: bool | None = None):
        self.strict = _env_flag("KGC_STRICT_PLUGINS") if strict is None else strict
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        if _env_flag("KGC_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(lambda text: print(text, end="", file=sys.stderr))
            self.pm.enable_tracing()
        self.plugins: dict[str, PluginInfo] = {}
        self.kinds = {k.name: k for k in CORE_KINDS}
        self._registry: Registry | None = None
        self._checked = True
        self._run: Run | None = None
        self._clis: list[Any] = []
        self.pm.hook.kgc_add_kinds.call_historic(kwargs={"add": self.add_kind})

    @classmethod
    def discover(cls, *, strict: bool | None = None) -> PluginHost:
        host = cls(strict=strict)
        host.load_entry_points()
        return host

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register every plugin of the entry-point group: built-ins (``kgc.*``) first, then by name."""
        blocked = {x.strip() for x in os.environ.get("KGC_DISABLE_PLUGINS", "").split(",") if x.strip()}
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: (not e.name.startswith("kgc."), e.name)):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else "", dist.version if dist else "", ep.value)
            if ep.name in blocked:
                self.pm.set_blocked(ep.name)
                info.error = "disabled by KGC_DISABLE_PLUGINS"
                self.plugins[ep.name] = info
            elif ep.name in self.plugins:
                self._fail(info, f"entry point name '{ep.name}' is already used by "
                                 f"'{self.plugins[ep.name].distribution}'", key=f"{ep.name} ({info.distribution})")
            else:
                try:
                    module = ep.load()
                except Exception as exc:  # a broken plugin must not break kgc
                    self._fail(info, _short(exc), exc)
                    continue
                self.register(module, name=ep.name, info=info)
        self.check()

    def register(self, plugin: ModuleType | Any, *, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object directly (used by entry points, embedders and tests)."""
        info = info or PluginInfo(name, module=getattr(plugin, "__name__", type(plugin).__name__))
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            if self.pm.is_registered(plugin):  # a historic hook (kgc_add_kinds) raised after registration
                self.pm.unregister(plugin)
            self._fail(info, _short(exc), exc)
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self.plugins[name] = info
        self._registry, self._checked = None, False

    def add_kind(self, kind: str, spec: Callable[..., Any], base: Any, form: str = "class") -> None:
        """Add a component kind and the hook spec that registers it (``kgc_add_kinds``)."""
        caller = getattr(self.pm.hook, spec.__name__, None)
        if caller is None or not caller.has_spec():
            self.pm.add_hookspecs(SimpleNamespace(**{spec.__name__: spec}))
        self.kinds[kind] = Kind(kind, spec.__name__, base, form)
        self._registry = None

    def check(self) -> None:
        """pluggy's ``check_pending``, per plugin: an implementation of an undeclared hook is a problem."""
        if self._checked:
            return
        self._checked = True
        try:
            self.pm.check_pending()
            return
        except pluggy.PluginValidationError:
            pass
        known = [name for name in vars(self.pm.hook) if getattr(self.pm.hook, name).has_spec()]
        for hook_name, caller in sorted(vars(self.pm.hook).items()):
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(hook_name, known, n=1)
                problem = f"unknown hook '{hook_name}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name)
                if self.strict:
                    raise PluginLoadError(f"plugin '{info.name}' ({info.module}): {problem}")
                if problem not in info.warnings:
                    info.warnings.append(problem)
                    warnings.warn(f"kgc plugin '{info.name}': {problem}", RuntimeWarning, stacklevel=3)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None, key: str | None = None) -> None:
        if self.strict:
            raise PluginLoadError(f"plugin '{info.name}' ({info.module}): {message}") from exc
        info.error = message
        self.plugins[key or info.name] = info
        warnings.warn(f"kgc plugin '{info.name}': {message}", RuntimeWarning, stacklevel=3)

    # -- calling hooks -------------------------------------------------------------------------
    def each(self, hook_name: str) -> Iterator[tuple[str, pluggy.HookCaller]]:
        """``(plugin name, caller)`` per implementation of a hook, in plugin order: pluggy callers
        (validated and traced) that reach that one plugin."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        for impl in impls:
            yield impl.plugin_name, self.pm.subset_hook_caller(hook_name, [i.plugin for i in impls if i is not impl])

    def add_commands(self, cli: Any) -> None:
        """Let plugins add their commands to ``cli`` (``kgc_register_commands``, once per host)."""
        if cli not in self._clis:
            self._clis.append(cli)
            self.pm.hook.kgc_register_commands.call_historic(kwargs={"cli": cli})

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a hook on every plugin (pluggy's order and semantics)."""
        return getattr(self.pm.hook, hook_name)(**kwargs)

    def postprocess(self, task: str, record: dict[str, Any], prediction: dict[str, Any]) -> dict[str, Any]:
        """``kgc_postprocess_prediction`` of every plugin in turn, each seeing the previous result."""
        for _, caller in self.each("kgc_postprocess_prediction"):
            result = caller(task=task, record=record, prediction=prediction)
            if result:
                prediction = result[0]
        return prediction

    @contextlib.contextmanager
    def run(self, command: str, options: dict[str, Any]) -> Iterator[Run]:
        """Fire ``kgc_run_start`` and ``kgc_run_end`` around a command; set ``run.result`` inside.

        Nested runs (a command calling the Python API) share the outer run and fire nothing; so do the
        processes of a distributed launch (torchrun, deepspeed) other than the main one (``RANK`` 0).
        """
        if self._run is not None or os.environ.get("RANK", "0") != "0":
            yield self._run or Run(command, options)
            return
        self._run = run = Run(command, options)
        self.call("kgc_run_start", command=command, options=options)
        try:
            yield run
        except BaseException as exc:
            self.call("kgc_run_end", command=command, options=options, result=run.result, error=exc)
            raise
        finally:
            self._run = None
        self.call("kgc_run_end", command=command, options=options, result=run.result, error=None)

    # -- components ------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        self.check()
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry(dict(self.kinds))
        for kind in self.kinds.values():
            for plugin_name, caller in self.each(kind.hook):
                info = self.plugins.get(plugin_name) or PluginInfo(plugin_name)

                def register(name: str, target: Any, summary: str = "", replace: bool = False,
                             _kind: Kind = kind, _info: PluginInfo = info) -> None:
                    component = Component(_kind, name, target, summary or _summary(target), _info.name,
                                          _info.distribution)
                    try:
                        registry.add(component, replace=replace)
                    except DuplicateComponentError as exc:  # only this name is unusable
                        self._fail(_info, str(exc), exc)

                try:
                    caller(register=register)
                except PluginLoadError:
                    raise
                except Exception as exc:
                    self._fail(info, f"{kind.hook} raised {_short(exc)}", exc)
        return registry

    def default_backend(self) -> str:
        name = self.call("kgc_default_backend")
        if not name:
            raise InputError("no backend named and no plugin offers a default one: pass --backend NAME")
        return name


@dataclass
class Run:
    """One command between ``kgc_run_start`` and ``kgc_run_end``."""

    command: str
    options: dict[str, Any]
    result: Any = None


def _short(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _summary(target: Any) -> str:
    if isinstance(target, str):
        return ""
    doc = getattr(target, "summary", None) or getattr(target, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if isinstance(doc, str) and doc.strip() else ""


_default_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, discovered on first use."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost.discover()
    return _default_host


def set_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (``None`` rediscovers on next use)."""
    global _default_host
    _default_host = host


def get_registry() -> Registry:
    return get_host().registry
