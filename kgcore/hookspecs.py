"""Hook specifications: the whole plugin API of kgc (docs/hooks.md).

Plugins implement these with ``@kgcore.hookimpl`` in a module named by an entry point of the
``kgc`` group; an implementation may accept any subset of a hook's keyword arguments. How each
hook is called is declared on its spec: ``firstresult`` (the first answer wins) or ``historic``
(plugins registered later still receive the call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("kgc")
hookimpl = pluggy.HookimplMarker("kgc")

#: ``register(name, target, summary="", replace=False)``: ``target`` is the component or a lazy
#: ``"module:attr"`` string.
Register = Callable[..., None]


@hookspec(historic=True)
def kgc_add_kinds(add: Callable[..., None]) -> None:
    """Declare new component kinds: ``add(kind, spec, base)``, ``spec`` being the kind's registration hook spec."""


@hookspec
def kgc_register_tasks(register: Register) -> None:
    """Register IE tasks (``kgcore.Task`` subclasses) under names such as ``NER``."""


@hookspec
def kgc_register_instructions(register: Register) -> None:
    """Register instruction templates (``kgcore.Instruction``) named ``TASK.LANGUAGE``."""


@hookspec
def kgc_register_chat_templates(register: Register) -> None:
    """Register chat templates (``kgcore.prompt.ChatTemplate``) that wrap an instruction into a model prompt."""


@hookspec(firstresult=True)
def kgc_load_chat_template(path: str) -> Any:
    """Read a chat template file given by path (``--template my.yaml``); the first plugin that reads it wins."""


@hookspec
def kgc_register_backends(register: Register) -> None:
    """Register inference backends (``kgcore.Backend`` subclasses)."""


@hookspec
def kgc_register_scorers(register: Register) -> None:
    """Register scorers (``kgcore.Scorer`` subclasses) that turn gold and predicted tuples into metrics."""


@hookspec
def kgc_register_readers(register: Register) -> None:
    """Register dataset readers that turn files into annotated samples."""


@hookspec(firstresult=True)
def kgc_default_backend() -> str | None:
    """The backend commands use when none is named (the first plugin to answer wins)."""


@hookspec(firstresult=True)
def kgc_open_graph(store: str, extractor: Any) -> Any:
    """The knowledge graph that ``kgc extract --graph STORE`` adds results to: ``add(extractions)``, ``close()``."""


@hookspec(historic=True)
def kgc_register_commands(cli: Any) -> None:
    """Add ``click`` commands or groups to the ``kgc`` command line."""


@hookspec
def kgc_run_start(command: str, options: dict[str, Any]) -> None:
    """Called when a ``kgc`` command (``convert``, ``evaluate``, ...) starts, with its options."""


@hookspec
def kgc_run_end(command: str, options: dict[str, Any], result: Any, error: BaseException | None) -> None:
    """Called when a command ends, with its result (a report or a count) or the error that stopped it."""


@hookspec
def kgc_postprocess_prediction(task: str, record: dict[str, Any], prediction: dict[str, Any]) -> dict[str, Any] | None:
    """Adjust a parsed prediction before it is scored, extracted or added to a graph.

    ``prediction`` is the dict parsed from the model's output for one ``record``. Return a new
    dict to replace it, or ``None`` to keep it. Implementations run in plugin order, each
    seeing the previous result.
    """
