"""kgc: build knowledge graphs from text with instruction-tuned LLMs.

The public API is what the ``kgc`` command line calls::

    import kgcore
    kgcore.convert("sample.json", "train.json", task="NER", schema="schema.json")
    report = kgcore.evaluate("predictions.json", task="NER")
"""

__version__ = "0.1.0"

from .conversion import convert
from .evaluation import evaluate
from .hookspecs import hookimpl
from .plugins import PluginHost, get_registry
from .schema import Label, Role, Schema, load_schema
from .task import ConvertOptions, Instruction, SchemaItem, Task

__all__ = [
    "ConvertOptions", "Instruction", "Label", "PluginHost", "Role", "Schema", "SchemaItem", "Task",
    "convert", "evaluate", "get_registry", "hookimpl", "load_schema", "__version__",
]
