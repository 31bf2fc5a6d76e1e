"""``kgc convert``: annotated samples to IEPile-style instruction records, streamed."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import InputError
from .jsonl import count_lines, dumps
from .plugins import PluginHost, get_host
from .sampling import split_by_num
from .schema import Schema, load_schema
from .task import ConvertOptions, Instruction, Sample, SchemaItem, Task, load_task


@dataclass
class ConvertStats:
    """What ``convert`` did: records read, instructions written, records that gave none."""

    records: int = 0
    instructions: int = 0
    skipped: int = 0
    output: str = ""


@dataclass(frozen=True)
class Chunk:
    """One instruction of one text: its schema items, the instruction string and, for training, the answer."""

    items: tuple[SchemaItem, ...]
    instruction: str
    target: dict[str, Any] | None = None


def stable_id(text: str) -> str:
    """The reference's record id: SHA-256 of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_hard_negatives(path: str | Path, section: str | None = None) -> dict[str, list[str]]:
    """Read ``{label: [confusable labels]}``; ``section`` (``TASK/DATASET``) picks from a nested file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("hard-negative file not found", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
    if section:
        for part in section.split("/"):
            if not isinstance(data, dict) or part not in data:
                known = ", ".join(sorted(data)) if isinstance(data, dict) else "none"
                raise InputError(f"no section '{part}' (available: {known})", path=str(path), field=section)
            data = data[part]
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        sections = [f"{t}/{d}" for t, v in data.items() if isinstance(v, dict) for d in v] if isinstance(data, dict) else []
        hint = f"; choose a section with --hard-negative-section ({', '.join(sections[:12])}...)" if sections else ""
        raise InputError("expected {label: [labels]}" + hint, path=str(path))
    return data


def resolve_instruction(task: str, language: str, override: str | None, host: PluginHost) -> Instruction:
    """A registered instruction by name (default ``TASK.LANGUAGE``), or ``override`` as literal text."""
    registry = host.registry
    if override and override in registry.names("instruction"):
        return registry.load("instruction", override)
    if override:
        return Instruction(task, language, override)
    name = f"{task}.{language}"
    if name not in registry.names("instruction"):
        languages = sorted({n.split(".")[1] for n in registry.names("instruction") if n.split(".")[0] == task})
        raise InputError(f"no {task} instruction in language '{language}' (available: {', '.join(languages) or 'none'}); "
                         "pass --instruction TEXT or register one")
    return registry.load("instruction", name)


class Converter:
    """Turns one sample into instructions; reusable across files."""

    def __init__(self, task: Task, schema: Schema, options: ConvertOptions, instruction: Instruction):
        self.task, self.schema, self.options, self.instruction = task, schema, options, instruction
        self.split_num = options.split_num if options.split_num is not None else task.default_split_num
        self.descriptions = schema.has_descriptions if options.descriptions is None else options.descriptions
        self.examples = list(options.examples or schema.examples)
        self.task_options = task.changed_options()

    def chunks(self, sample: Sample, index: int = 0) -> list[Chunk]:
        """The instructions of one text (schema items in memory), in order."""
        opts, task = self.options, self.task
        rng = random.Random(f"{opts.seed}/{index}/{sample.text}")
        items = task.select(sample, self.schema, opts, rng)
        if items is None:
            return []
        text = self.instruction.text + (self.instruction.example_suffix if self.examples else "")
        out = []
        for chunk in split_by_num(items, self.split_num):
            instruction: dict[str, Any] = {"instruction": text,
                                           "schema": task.schema_value(chunk, opts, self.descriptions)}
            if self.examples:
                instruction["example"] = self.examples
            instruction["input"] = sample.text
            target = task.target(sample, chunk, opts) if opts.is_train else None
            out.append(Chunk(tuple(chunk), dumps(instruction), target))
        return out

    def records(self, sample: Sample, index: int = 0) -> list[dict[str, Any]]:
        """The instruction records of one text, as ``kgc convert`` writes them."""
        task, out = self.task, []
        for chunk in self.chunks(sample, index):
            if chunk.target is not None:
                record = {"task": task.name, "source": self.options.source, "instruction": chunk.instruction,
                          "output": dumps(chunk.target)}
            else:
                record = {"id": stable_id(sample.text), "task": task.name, "source": self.options.source,
                          "instruction": chunk.instruction}
                if task.annotation_key in sample.record:
                    record["label"] = dumps(sample.record[task.annotation_key])
            if self.task_options:
                record["task_options"] = self.task_options
            out.append(record)
        return out


def read_samples(path: str | Path, task: Task, *, reader: str = "jsonl", host: PluginHost | None = None):
    """Yield ``(line, Sample)`` from an annotated file, validated; bad lines raise :class:`InputError`."""
    import jsonschema

    read = (host or get_host()).registry.load("reader", reader)
    validator = jsonschema.Draft202012Validator(task.record_schema())
    for line, record in read(path):
        errors = list(validator.iter_errors(record))
        if errors:
            error = jsonschema.exceptions.best_match(errors)
            field_path = ".".join(str(p) for p in error.absolute_path) or None
            raise InputError(error.message, path=str(path), line=line, field=field_path)
        prepared = task.prepare(record)
        yield line, (task.read(prepared) if prepared is not None else None)


def convert(input_path: str | Path, output_path: str | Path | None, *, task: str | Task, schema: str | Path | Schema,
            options: ConvertOptions | None = None, instruction: str | None = None, reader: str = "jsonl",
            limit: int | None = None, progress: bool = True, host: PluginHost | None = None) -> ConvertStats:
    """Convert ``input_path`` to instruction records at ``output_path`` (``None`` or ``-``: stdout).

    ``task`` is a task name or a :class:`Task` built with its options. ``limit`` converts only the
    first that many records. The output file appears only when conversion finished: a bad line
    stops the run with its file, line and field, and leaves no half-written output behind.
    """
    host = host or get_host()
    task_obj = task if isinstance(task, Task) else load_task(task, host=host)
    options = options or ConvertOptions()
    if not options.source:
        options = replace(options, source=Path(input_path).resolve().parent.name)
    if options.split not in {"train", "test"}:
        raise InputError(f"split must be 'train' or 'test', not '{options.split}'")
    if not isinstance(schema, Schema):
        schema = load_schema(schema, task_obj)
    converter = Converter(task_obj, schema, options, resolve_instruction(task_obj.name, options.language,
                                                                         instruction, host))
    run_options = {"input": str(input_path), "output": str(output_path), "task": task_obj.name,
                   "task_options": converter.task_options,
                   **{k: v for k, v in asdict(options).items() if k != "hard_negatives"}}
    with host.run("convert", run_options) as run:
        run.result = stats = _write(converter, input_path, output_path, reader, limit, progress, host)
    return stats


def _write(converter: Converter, input_path, output_path, reader: str, limit: int | None, progress: bool,
           host: PluginHost) -> ConvertStats:
    to_stdout = output_path in (None, "-")
    stats = ConvertStats(output="-" if to_stdout else str(output_path))
    if to_stdout:
        fh, tmp = sys.stdout, None
    else:
        output_path = Path(output_path)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = output_path.with_name(f".{output_path.name}.partial")
        fh = tmp.open("w", encoding="utf-8")
    try:
        from tqdm import tqdm

        total = count_lines(input_path)
        with tqdm(total=min(total, limit) if limit is not None else total, unit=" records", file=sys.stderr,
                  desc=f"convert {converter.task.name}", disable=not progress) as bar:
            for index, (_, sample) in enumerate(read_samples(input_path, converter.task, reader=reader, host=host)):
                if limit is not None and index >= limit:
                    break
                bar.update(1)
                stats.records += 1
                records = converter.records(sample, index) if sample is not None else []
                stats.skipped += not records
                for record in records:
                    fh.write(dumps(record) + "\n")
                stats.instructions += len(records)
    except BaseException:
        if tmp is not None:
            fh.close()
            tmp.unlink(missing_ok=True)
        raise
    if tmp is not None:
        fh.close()
        os.replace(tmp, output_path)
    return stats
