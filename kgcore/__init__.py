"""kgc: build knowledge graphs from text with instruction-tuned LLMs.

``__all__`` is the public API, one entry per command: ``convert``, ``Extractor``, ``predict``,
``evaluate`` (docs/python-api.md).
"""

__version__ = "0.1.0"

from .backend import Backend, BackendError, Generation, GenerationParams, Request, load_backend
from .conversion import convert
from .errors import InputError, KGCError
from .evaluation import Scorer, evaluate
from .extraction import Extraction, Extractor, Span
from .hookspecs import hookimpl
from .parsing import ParsedAnswer, parse_answer, read_answer
from .plugins import PluginHost, get_host
from .prediction import predict
from .prompt import PromptStyle
from .schema import Label, Role, Schema, load_schema
from .task import ConvertOptions, Instruction, Sample, SchemaItem, Task, load_task

__all__ = [
    "Backend", "BackendError", "ConvertOptions", "Extraction", "Extractor", "Generation", "GenerationParams",
    "InputError", "Instruction", "KGCError", "Label", "ParsedAnswer", "PluginHost", "PromptStyle", "Request", "Role",
    "Sample", "Schema", "SchemaItem", "Scorer", "Span", "Task", "__version__", "convert", "evaluate", "get_host",
    "hookimpl", "load_backend", "load_schema", "load_task", "parse_answer", "predict", "read_answer",
]
