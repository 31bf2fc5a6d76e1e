"""Hook specifications: the whole plugin API of kgc.

Plugins implement these with ``@kgcore.hookimpl`` in a module named by an entry point of the
``kgc`` group. Hooks are called with keyword arguments, and an implementation may accept any
subset of them. Entry modules must stay cheap to import: register ``"module:attr"`` strings so
that heavy libraries load only when a component is used.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("kgc")
hookimpl = pluggy.HookimplMarker("kgc")

# --- Registration hooks -----------------------------------------------------------------
# Each receives ``register(name, target, summary="", replace=False)``; ``target`` is an object
# or a lazy ``"module:attr"`` reference.


@hookspec
def kgc_register_tasks(register):
    """Register IE tasks (``kgcore.task.Task`` subclasses) under names such as ``NER``."""


@hookspec
def kgc_register_instructions(register):
    """Register instruction templates (``kgcore.task.Instruction``) named ``TASK.LANGUAGE``."""


@hookspec
def kgc_register_chat_templates(register):
    """Register chat templates that wrap an instruction into a model prompt."""


@hookspec
def kgc_register_model_families(register):
    """Register model families (default chat template, LoRA target modules, loader)."""


@hookspec
def kgc_register_backends(register):
    """Register inference backends."""


@hookspec
def kgc_register_trainers(register):
    """Register training methods."""


@hookspec
def kgc_register_scorers(register):
    """Register scorers that turn gold and predicted tuples into metrics."""


@hookspec
def kgc_register_readers(register):
    """Register dataset readers that turn files into annotated samples."""


@hookspec
def kgc_register_exporters(register):
    """Register knowledge-graph exporters."""


@hookspec
def kgc_register_commands(cli):
    """Add ``click`` commands or groups to the ``kgc`` command line."""


# --- Pipeline hooks ---------------------------------------------------------------------


@hookspec
def kgc_run_start(command, options):
    """Called when a ``kgc`` job (``convert``, ``evaluate``, ...) starts, with its options."""


@hookspec
def kgc_run_end(command, options, result):
    """Called when a job ends, with its result (a report or a count)."""


@hookspec
def kgc_postprocess_prediction(task, record, prediction):
    """Adjust a parsed prediction before it is scored or used.

    ``prediction`` is the dict parsed from the model's output for one ``record``. Return a new
    dict to replace it, or ``None`` to keep it. Implementations run in plugin order, each
    seeing the previous result.
    """
