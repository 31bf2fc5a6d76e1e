"""``kgc predict``: converted test records to model answers, batched and resumable.

Answers are flushed to disk batch by batch: an interrupted run (even ``kill -9``) loses at most the
batch in flight, and a rerun skips every record already answered. Each record is asked with the task
options it was converted with. Run metadata goes to ``<output>.meta.json``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import platform
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .backend import Backend, Generation, GenerationParams, Request
from .errors import InputError
from .jsonl import dumps, read_jsonl
from .plugins import PluginHost, get_host
from .prompt import PromptStyle, RequestBuilder
from .task import Task, load_task


def record_key(record: dict[str, Any]) -> str:
    """Identity of one instruction record: source, text id and instruction."""
    digest = hashlib.sha256(record.get("instruction", "").encode("utf-8")).hexdigest()[:16]
    return f"{record.get('source', '')}/{record.get('id', '')}/{digest}"


def package_versions(names: Iterable[str] = ()) -> dict[str, str]:
    """Versions of Python, kgcore and the named distributions that are installed."""
    versions = {"python": platform.python_version()}
    for name in ("kgcore", *names):
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


class RecordRequests:
    """Requests for converted records: each record's task, with the options it was converted with
    (``task`` and ``task_options`` override the records')."""

    def __init__(self, style: PromptStyle = PromptStyle(), constrained: bool = True, task: str | None = None,
                 task_options: Mapping[str, Any] | None = None, host: PluginHost | None = None, quote: bool = True):
        self.host = host or get_host()
        self.builder = RequestBuilder(style, constrained, self.host, quote)
        self.task, self.task_options = task, dict(task_options or {})
        self._tasks: dict[str, Task] = {}

    def task_for(self, record: dict[str, Any]) -> Task | None:
        name = self.task or record.get("task")
        if not name:
            return None
        options = {**(record.get("task_options") or {}), **self.task_options}
        key = json.dumps([name, options], sort_keys=True)
        if key not in self._tasks:
            self._tasks[key] = load_task(name, options, self.host)
        return self._tasks[key]

    def __call__(self, record: dict[str, Any]) -> Request:
        task = self.task_for(record)
        try:
            fields = json.loads(record["instruction"])
            value, text = fields.get("schema"), fields.get("input")
        except (json.JSONDecodeError, AttributeError):
            value = text = None
        items = task.items_from_schema(value) if task is not None and value is not None else []
        return self.builder(record["instruction"], task, items, text if isinstance(text, str) else None)


def _resume(output: Path) -> set[str]:
    """Keys already answered; a torn last line (killed mid-write) is cut off."""
    if not output.exists():
        return set()
    done, good_bytes = set(), 0
    with output.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                done.add(record_key(json.loads(raw)))
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            good_bytes += len(raw)
    if good_bytes != output.stat().st_size:
        with output.open("r+b") as fh:
            fh.truncate(good_bytes)
    return done


def answered(record: dict[str, Any], generation: Generation) -> dict[str, Any]:
    """The output line of a record: the record, its ``output``, and ``truncated`` if the token limit cut it."""
    cut = {"truncated": True} if generation.finish_reason == "length" else {}
    return {**record, "output": generation.text, **cut}


def predict(input_path: str | Path, output_path: str | Path, backend: Backend, *, task: str | None = None,
            task_options: Mapping[str, Any] | None = None, style: PromptStyle = PromptStyle(),
            params: GenerationParams = GenerationParams(), batch_size: int = 8, progress: bool = True,
            host: PluginHost | None = None) -> dict[str, Any]:
    """Answer every instruction of ``input_path`` into ``output_path``; returns the run metadata.

    ``task`` overrides the records' ``task`` field; ``task_options`` override the options the
    records were converted with.
    """
    host = host or get_host()
    output_path = Path(output_path)
    records = [r for _, r in read_jsonl(input_path)]
    for number, record in enumerate(records, 1):
        if not isinstance(record.get("instruction"), str):
            raise InputError("missing instruction", path=str(input_path), line=number, field="instruction")
    requests = RecordRequests(style, params.constrained, task, task_options, host, params.quote)
    for record in records[:1]:
        requests.task_for(record)  # an unknown task fails before any answer is generated
    params = replace(params, stop=tuple(dict.fromkeys(params.stop + requests.builder.stop)))
    task_name = task or next((r["task"] for r in records if r.get("task")), None)
    options = {"input": str(input_path), "output": str(output_path), "task": task_name,
               "task_options": dict(task_options or {}), **asdict(style), **asdict(params), "batch_size": batch_size}
    with host.run("predict", options) as run:
        done = _resume(output_path)
        pending = [r for r in records if record_key(r) not in done]
        unique_pending = list({record_key(r): r for r in pending}.values())
        run.result = meta = _generate(unique_pending, requests, backend, params, batch_size, output_path, progress,
                                      len(records))
        meta.update({"task": task_name, "template": style.template, "system": style.system,
                     "input": str(input_path), "resumed_from": len(records) - len(pending),
                     "versions": package_versions(backend.packages)})
        Path(f"{output_path}.meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                                                    encoding="utf-8")
    return meta


def _generate(records: list[dict[str, Any]], requests: RecordRequests, backend: Backend, params: GenerationParams,
              batch_size: int, output_path: Path, progress: bool, total: int) -> dict[str, Any]:
    from tqdm import tqdm

    output_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    prompt_tokens = completion_tokens = 0
    finish: dict[str, int] = {}
    with output_path.open("a", encoding="utf-8") as fh, tqdm(total=total, initial=total - len(records), unit=" rec",
                                                             desc="predict", disable=not progress) as bar:
        for i in range(0, len(records), batch_size):
            batch = records[i:i + batch_size]
            for record, generation in zip(batch, backend.generate([requests(r) for r in batch], params), strict=True):
                fh.write(dumps(answered(record, generation)) + "\n")
                prompt_tokens += generation.prompt_tokens
                completion_tokens += generation.completion_tokens
                finish[generation.finish_reason] = finish.get(generation.finish_reason, 0) + 1
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
            bar.set_postfix_str(f"{completion_tokens / max(time.perf_counter() - start, 1e-9):.1f} tok/s")
    seconds = time.perf_counter() - start
    return {**backend.describe(), "generation": asdict(params), "batch_size": batch_size, "output": str(output_path),
            "records": total, "answered_now": len(records), "seconds": round(seconds, 3),
            "records_per_s": round(len(records) / seconds, 3) if seconds else None,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "completion_tokens_per_s": round(completion_tokens / seconds, 3) if seconds else None,
            "finish_reasons": finish}
