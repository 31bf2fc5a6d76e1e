"""Plugin discovery: entry points of the ``kgc`` group, loaded one by one.

A plugin that fails to import or register is recorded with its error and skipped, so it never
breaks another command; ``strict=True`` (or ``KGC_STRICT_PLUGINS=1``) raises instead.
``KGC_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import traceback
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import DuplicateComponentError, PluginLoadError
from .registry import KINDS, Component, Registry

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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> set[str]:
    return {x.strip() for x in os.environ.get(name, "").split(",") if x.strip()}


class PluginHost:
    """A pluggy manager plus the registry of components its plugins contribute."""

    def __init__(self, *, strict: bool | None = None):
        self.strict = _env_flag("KGC_STRICT_PLUGINS") if strict is None else strict
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None
        if _env_flag("KGC_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(print)
            self.pm.enable_tracing()

    @classmethod
    def discover(cls, *, strict: bool | None = None) -> PluginHost:
        host = cls(strict=strict)
        host.load_entry_points()
        return host

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        blocked = _env_list("KGC_DISABLE_PLUGINS")
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: (not e.name.startswith("kgc."), e.name)):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else "", dist.version if dist else "", ep.value)
            if ep.name in blocked:
                self.pm.set_blocked(ep.name)
                info.error = "disabled by KGC_DISABLE_PLUGINS"
                self.plugins[ep.name] = info
                continue
            if ep.name in self.plugins:
                self._fail(info, f"entry point name '{ep.name}' is already used by "
                                 f"'{self.plugins[ep.name].distribution}'", key=f"{ep.name} ({info.distribution})")
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break kgc
                self._fail(info, _short(exc), exc)
                continue
            self.register(module, name=ep.name, info=info)

    def register(self, plugin: ModuleType | Any, *, name: str, info: PluginInfo | None = None) -> None:
        """Register a plugin object directly (used by entry points, embedders and tests)."""
        info = info or PluginInfo(name, module=getattr(plugin, "__name__", type(plugin).__name__))
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(info, _short(exc), exc)
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self.plugins[name] = info
        self._registry = None

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None, key: str | None = None) -> None:
        if self.strict:
            raise PluginLoadError(f"plugin '{info.name}' ({info.module}): {message}") from exc
        info.error = message
        self.plugins[key or info.name] = info
        warnings.warn(f"kgc plugin '{info.name}': {message}", RuntimeWarning, stacklevel=3)

    # -- components ------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry()
        for kind, hook_name in KINDS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():  # registration order (pluggy lists them so)
                info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name)

                def register(name: str, target: Any, summary: str = "", replace: bool = False,
                             _kind: str = kind, _info: PluginInfo = info) -> None:
                    component = Component(_kind, name, target, summary or _summary(target),
                                          _info.name, _info.distribution)
                    try:
                        registry.add(component, replace=replace)
                    except DuplicateComponentError as exc:  # only this name is unusable
                        self._fail(_info, str(exc), exc)

                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except PluginLoadError:
                    raise
                except Exception as exc:
                    self._fail(info, f"{hook_name} raised {_short(exc)}", exc)
        return registry

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a pipeline hook; results come last-registered first (pluggy's order)."""
        return getattr(self.pm.hook, hook_name)(**kwargs)


def _short(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _summary(target: Any) -> str:
    if isinstance(target, str):
        return ""
    doc = getattr(target, "summary", None) or getattr(target, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


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
