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
from .errors import DuplicateComponentError, PluginLoadError
from .registry import CORE_KINDS, Component, Kind, Registry

ENTRY_POINT_GROUP = "kgc"


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

