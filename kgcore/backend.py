"""The backend interface: a batch of requests in, one generation per request out.

Backends are plugins (``kgc_register_backends``) that import their heavy library only when
constructed. Each declares typed ``Options`` (a dataclass) so that ``-o key=value`` pairs are
checked and listed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import KGCError


class BackendError(KGCError):
    """A backend failed in a way that retrying will not fix (bad model path, server gone, ...)."""


@dataclass(frozen=True)
class Request:
    """One prompt. ``messages`` are always set; ``prompt`` is the text rendered with a named chat
    template, or ``None`` when the backend should apply the model's own template (``auto``)."""

    messages: tuple[dict[str, str], ...]
    prompt: str | None = None
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings shared by all backends; greedy by default."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 42
    constrained: bool = True


@dataclass
class Generation:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


class Backend:
    """Base class. Subclasses set ``name`` and ``Options`` and implement :meth:`generate`."""

    name: ClassVar[str]
    #: Dataclass of the backend's options (``model`` is always one of them).
    Options: ClassVar[type]
    #: Whether requests' ``json_schema`` is enforced while decoding.
    supports_json_schema: ClassVar[bool] = False

    def __init__(self, options: Any):
        self.options = options

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[Generation]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What goes into run metadata (never secrets)."""
        return {"backend": self.name, **{k: v for k, v in dataclasses.asdict(self.options).items()
                                         if "key" not in k.lower()}}

    def close(self) -> None:
        """Release models, processes and connections."""


def parse_options(options_cls: type, pairs: Mapping[str, Any], backend: str) -> Any:
    """Build ``options_cls`` from string pairs, converting to the declared field types."""
    from .errors import InputError

    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(pairs) - set(fields))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for backend '{backend}'; "
                         f"valid: {', '.join(sorted(fields))}")
    missing = [name for name, f in fields.items() if name not in pairs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        hint = " (-m MODEL)" if missing == ["model"] else ""
        raise InputError(f"backend '{backend}' needs option(s) {', '.join(missing)}{hint}")
    values = {}
    for key, raw in pairs.items():
        kind = fields[key].type if isinstance(fields[key].type, str) else getattr(fields[key].type, "__name__", "str")
        values[key] = _coerce(raw, kind, key, backend)
    try:
        return options_cls(**values)
    except TypeError as exc:
        raise InputError(f"backend '{backend}': {exc}") from None


def _coerce(raw: Any, kind: str, key: str, backend: str) -> Any:
    from .errors import InputError

    if not isinstance(raw, str):
        return raw
    kind = kind.replace(" ", "")
    try:
        if kind.startswith("bool"):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith(("tuple", "list")):
            return tuple(x.strip() for x in raw.split(",") if x.strip())
    except ValueError:
        raise InputError(f"option '{key}' of backend '{backend}' expects {kind}, got '{raw}'") from None
    return raw


__all__ = ["Backend", "BackendError", "Generation", "GenerationParams", "Request", "parse_options"]
