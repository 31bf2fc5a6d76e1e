"""The backend interface: a batch of requests in, one generation per request out.

Backends are plugins (``kgc_register_backends``) that import their heavy library only when
constructed. Each declares typed ``Options`` (a dataclass) so that ``-O key=value`` pairs are
checked and listed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import InputError, KGCError
from .options import parse_options


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
    #: constrained answers may only quote the text: their strings are spans of the input
    quote: bool = True


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
    #: Distributions whose versions go into run metadata.
    packages: ClassVar[tuple[str, ...]] = ()

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


def load_backend(name: str | None, options: Mapping[str, Any], host: Any = None) -> Backend:
    """A registered backend (``None``: the default one) built with typed options (``{"model": ..., ...}``)."""
    from .plugins import get_host

    host = host or get_host()
    name = name or host.call("kgc_default_backend")
    if not name:
        raise InputError("no backend named and no plugin offers a default one: pass --backend NAME")
    backend_cls = host.registry.load("backend", name)
    return backend_cls(parse_options(backend_cls.Options, options, f"backend '{name}'"))
