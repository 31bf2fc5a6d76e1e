"""Where a graph's documents come from: extraction results (from Python or ``kgc extract`` lines) and
``kgc predict`` prediction files joined with their records."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgcore import InputError, Task, load_task, read_answer
from kgcore.conversion import stable_id
from kgcore.extraction import Extraction
from kgcore.jsonl import read_jsonl
from kgcore.plugins import PluginHost, get_host

from .model import Document, Provenance, Result


@dataclass
class Sources:
    """Reads documents, counting the answers that could not be parsed (they add nothing)."""

    host: PluginHost | None = None
    parse_failures: int = 0

    def __post_init__(self) -> None:
        self.host = self.host or get_host()
        self._tasks: dict[str, Task] = {}

    def task(self, name: str) -> Task:
        if name not in self._tasks:
            self._tasks[name] = load_task(name, host=self.host)
        return self._tasks[name]

    def extraction(self, extraction: Extraction | Mapping[str, Any]) -> Document:
        """The document of one extraction (a :class:`kgcore.Extraction` or a ``kgc extract`` JSON line)."""
        data = extraction.as_dict() if isinstance(extraction, Extraction) else extraction
        task = self.task(data["task"])
        prov = data.get("provenance") or {}
        self.parse_failures += int(data.get("parse_failures") or 0)
        result = Result(task.name, data["result"], task.graph_shape, tuple(map(tuple, data.get("triples") or ())),
                        _types(task, prov.get("labels") or ()),
                        Provenance(prov.get("backend", ""), prov.get("model", ""), prov.get("run", ""),
                                   prov.get("time", "")))
        return Document(data.get("id") or stable_id(data["text"]), data["text"], {task.name: result})

    def files(self, paths: Iterable[str | Path], task: str | None = None) -> Iterator[Document]:
        """Documents of ``kgc extract`` output files and ``kgc predict`` prediction files (``task`` for lines
        that do not name theirs). A bad line stops the run with its file, line and field."""
        for path in map(Path, paths):
            predictions: dict[str, dict[str, Any]] = {}
            for line, record in read_jsonl(path):
                if "instruction" in record and "output" in record:
                    self._prediction(record, predictions, path, line, task)
                elif "text" in record and "result" in record:
                    yield self.extraction(_checked(record, path, line, task))
                else:
                    raise InputError("neither a kgc extract line (text, result) nor a prediction record "
                                     "(instruction, output)", path=str(path), line=line)
            provenance = _prediction_provenance(path)
            for doc in predictions.values():
                results = {name: Result(name, answer, self.task(name).graph_shape, (), types, provenance)
                           for name, (answer, types) in doc["results"].items()}
                yield Document(doc["id"], doc["text"], results)

    def _prediction(self, record: dict[str, Any], docs: dict[str, dict[str, Any]], path: Path, line: int,
                    task: str | None) -> None:
        """Merge one prediction record (one instruction's answer) into its document."""
        name = task or record.get("task")
        if not isinstance(name, str) or not name:
            raise InputError("no task: add a 'task' field or pass --task", path=str(path), line=line, field="task")
        try:
            instruction = json.loads(record["instruction"])
            text, schema = instruction["input"], instruction["schema"]
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise InputError(f"not a converted instruction ({exc})", path=str(path), line=line,
                             field="instruction") from None
        if not isinstance(text, str):
            raise InputError("the instruction's input is not text", path=str(path), line=line, field="instruction")
        task_obj = self.task(name)
        doc_id = str(record.get("id") or stable_id(text))
        doc = docs.setdefault(doc_id, {"id": doc_id, "text": text, "results": {}})
        answer, types = doc["results"].setdefault(task_obj.name, ({}, {}))
        types.update(_types(task_obj, [item.key for item in task_obj.items_from_schema(schema)]))
        parsed = read_answer(record["output"], task_obj.name, record, self.host)
        if parsed.ok:
            answer.update(parsed.value)
        else:
            self.parse_failures += 1


def _checked(record: dict[str, Any], path: Path, line: int, task: str | None) -> dict[str, Any]:
    """A ``kgc extract`` line, its fields checked."""
    record = {**record, "task": record.get("task") or task}
    for name, kind in (("text", str), ("task", str), ("result", dict), ("triples", list), ("provenance", dict)):
        if name in record and record[name] is not None and not isinstance(record[name], kind):
            raise InputError(f"expected {kind.__name__}, got {type(record[name]).__name__}", path=str(path),
                             line=line, field=name)
    if not record["task"]:
        raise InputError("no task: add a 'task' field or pass --task", path=str(path), line=line, field="task")
    return record


def _types(task: Task, label_keys: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
    """``{relation: (subject type, object type)}`` of the typed labels asked for (SPO)."""
    labels = [task.label(key) for key in label_keys]
    return {l.name: (l.subject_type, l.object_type) for l in labels if l.subject_type or l.object_type}


def _prediction_provenance(path: Path) -> Provenance:
    """Backend, model and time from ``kgc predict``'s ``<file>.meta.json``; the run is that file's digest."""
    meta_path = Path(f"{path}.meta.json")
    if not meta_path.is_file():
        return Provenance(run=f"file:{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}")
    text = meta_path.read_text(encoding="utf-8")
    meta = json.loads(text)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(meta_path.stat().st_mtime))
    return Provenance(str(meta.get("backend", "")), str(meta.get("model", "")),
                      f"predict:{hashlib.sha256(text.encode()).hexdigest()[:16]}", when)
