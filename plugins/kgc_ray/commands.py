"""``--engine ray`` for ``kgc extract`` and ``kgc predict``: the options, and the two jobs behind them."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from kgcore.cli import prompt_and_params, task_option_pairs
from kgcore.errors import InputError
from kgcore.options import parse_pairs
from kgcore.plugins import get_host

from .corpus import Fields, Shard, corpus_files, plan_shards
from .job import Cluster, Progress, ShardFolder, run_shards

_ENGINE_OPTIONS = [
    click.Option(["--engine"], type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="local: this process; ray: a pool of Ray actors, one model each (docs/scale-out.md)."),
    click.Option(["--address"], default=None, help="[ray] Ray cluster to join (default: start a local instance)."),
    click.Option(["--actors"], type=click.IntRange(min=1), default=None,
                 help="[ray] Model actors (default: as many as the CPUs, or GPUs, allow)."),
    click.Option(["--cpus-per-actor"], type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                 help="[ray] CPUs each actor holds (llama.cpp: its threads)."),
    click.Option(["--gpus-per-actor"], type=click.FloatRange(min=0), default=0.0, show_default=True,
                 help="[ray] GPUs each actor holds (vLLM: one engine per GPU; 2+ with -O tensor_parallel_size)."),
    click.Option(["--shard-size"], type=click.IntRange(min=1), default=None,
                 help="[ray] Documents (records) per output shard, the unit of retry and resume (default: 32, "
                      "less for a corpus of under 256, so that it still makes 8 shards)."),
]
_EXTRACT_OPTIONS = [
    click.Option(["-o", "--output", "output_dir"], type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="[ray] Folder of result shards (needed with --engine ray; a rerun resumes it)."),
    click.Option(["--corpus"], multiple=True, type=click.Path(exists=True, path_type=Path),
                 help="[ray] Documents: JSONL, Parquet or text files, or folders of them (repeatable)."),
    click.Option(["--text-field"], default="text", show_default=True, help="[ray] Text field of corpus records."),
    click.Option(["--id-field"], default="id", show_default=True,
                 help="[ray] Id field of corpus records (missing: an id made from the text)."),
    click.Option(["--chunk-chars"], type=click.IntRange(min=100), default=2000, show_default=True,
                 help="[ray] Longer documents are cut into chunks of at most this many characters."),
    click.Option(["--output-format"], type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True,
                 help="[ray] Format of the result shards."),
    click.Option(["-q", "--quiet"], is_flag=True, help="[ray] No progress bar."),
]


def add_engine(command: click.Command, job: Any, extra: list[click.Option]) -> None:
    """Give ``command`` the options above it lacks; ``--engine ray`` runs ``job`` with all of its arguments,
    ``--engine local`` the command as it was."""
    own = {p.name for p in command.params}
    if "engine" in own:  # extended already (the hook runs once per plugin host)
        return
    added = [o for o in _ENGINE_OPTIONS + extra if o.name not in own]
    command.params += added
    callback = command.callback

    @functools.wraps(callback)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        if kwargs["engine"] == "ray":
            return job(**kwargs)
        given = [o.opts[-1] for o in added if o.name != "engine" and kwargs[o.name] not in (None, (), False, o.default)]
        if given:
            raise click.UsageError(f"{', '.join(given)} need --engine ray")
        return callback(*args, **{k: v for k, v in kwargs.items() if k not in {o.name for o in added}})

    command.callback = dispatch


def _cluster(kw: dict[str, Any]) -> Cluster:
    return Cluster(kw["address"], kw["actors"], kw["cpus_per_actor"], kw["gpus_per_actor"])


def _backend(kw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Backend name and options; llama.cpp actors get as many threads as CPUs they hold."""
    name = kw["backend"] or get_host().call("kgc_default_backend")
    options = parse_pairs(kw["backend_option"], "backend option")
    if kw["model"] is not None:
        options["model"] = kw["model"]
    if name == "llamacpp" and "n_threads" not in options and not kw["gpus_per_actor"]:
        options["n_threads"] = max(1, int(kw["cpus_per_actor"]))
    return name, options


def _public(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if not any(w in k.lower() for w in ("key", "secret", "password"))}


def _plan(files: list[tuple[Path, str]], size: int | None, required: str) -> tuple[list[Shard], int]:
    """Shards of ``size`` documents, and the size; by default 32, or fewer for a small corpus, to keep 8."""
    shards = plan_shards(files, size or 32, required)
    documents = sum(s.count for s in shards)
    if size is None and len(shards) < 8 and documents > len(shards):
        size = max(1, -(-documents // 8))
        shards = plan_shards(files, size, required)
    return shards, size or 32


def _fingerprint(files: list[tuple[Path, str]]) -> list[list[Any]]:
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p, _ in files]


def extract_job(**kw: Any) -> None:
    from kgcore.extraction import labels_schema
    from kgcore.schema import load_schema
    from kgcore.task import load_task

    from .workers import ExtractWorker

    out = kw["output_dir"]
    if out is None:
        raise click.UsageError("--engine ray writes result shards to a folder: give -o/--output DIR")
    if (kw["labels"] is None) == (kw["schema_path"] is None):
        raise click.UsageError("give either --labels or --schema")
    if sum(x is not None and x != () for x in (kw["text"], kw["input_file"], kw["corpus"] or None)) > 1:
        raise click.UsageError("give one of TEXT, --input and --corpus")
    files = _texts(kw, out)
    task_options = task_option_pairs(kw["task_option"])
    task = load_task(kw["task"], task_options)
    schema = load_schema(kw["schema_path"], task) if kw["schema_path"] else labels_schema(kw["labels"].split(","), task)
    style, params = prompt_and_params(kw["template"], kw["system"], kw["max_new_tokens"], kw["temperature"],
                                      kw["constrained"], kw["quote"])
    backend, backend_options = _backend(kw)
    fields = Fields(kw["text_field"], kw["id_field"] or None)
    shards, shard_size = _plan(files, kw["shard_size"], fields.text)
    folder = ShardFolder(out, kw["output_format"], {
        "command": "extract", "inputs": _fingerprint(files), "task": task.name, "task_options": task_options,
        "schema": hashlib.sha256(repr(schema).encode()).hexdigest()[:16], "language": kw["language"],
        "split_num": kw["split_num"], "backend": backend, "backend_options": _public(backend_options),
        "style": [style.template, style.system], "params": [params.max_new_tokens, params.temperature,
                                                            params.constrained, params.quote],
        "fields": [fields.text, fields.id], "chunk_chars": kw["chunk_chars"], "shard_size": shard_size,
        "triples": kw["triples"], "raw": kw["raw"]})
    job = folder.open(shards)
    config = {"task": task.name, "task_options": task_options, "schema": schema, "labels": None,
              "backend": backend, "backend_options": backend_options, "language": kw["language"],
              "split_num": kw["split_num"], "style": style, "params": params, "batch_size": kw["batch_size"],
              "fields": fields, "chunk_chars": kw["chunk_chars"], "triples": kw["triples"], "raw": kw["raw"],
              "run": job["run"], "time": job["time"]}
    graph = _graph(kw["graph_store"])
    done = folder.done(shards)
    progress = Progress("extract (ray)", shards, done, kw["quiet"])
    progress.counts["statements_ingested"] = 0

    ingested = job["ingested"].setdefault(kw["graph_store"], []) if graph is not None else []  # per graph

    def ingest(number: int) -> None:
        if graph is not None and number not in ingested:
            graph.add(list(folder.read(number)))
            graph.flush()
            ingested.append(number)
            folder.save(job)

    def finished(number: int, lines: str, counts: dict[str, Any]) -> None:
        folder.write(number, lines)
        progress.add(number, counts)
        ingest(number)

    try:
        for number in sorted(done):
            ingest(number)
        run_shards(ExtractWorker, config, [s for s in shards if s.number not in done], _cluster(kw), finished)
    finally:
        summary = progress.close()
        if graph is not None:
            graph.close()
            summary["statements_ingested"] = graph.quads
    summary["output"] = str(out)
    (out / "_summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    click.echo(f"extract (ray): {summary['documents']} documents ({summary['answered_now']} now, "
               f"{summary['skipped']} in {summary['skipped_shards']} finished shards), {summary.get('chunks', 0)} "
               f"chunks, {summary.get('parse_failures', 0)} parse failures, {summary['statements_ingested']} "
               f"statements ingested, {summary['seconds']:.1f} s ({summary['documents_per_s']} docs/s) -> {out}",
               err=True)


def _texts(kw: dict[str, Any], out: Path) -> list[tuple[Path, str]]:
    """The job's files: the corpus, the --input file, or TEXT / standard input kept in the output folder."""
    if kw["corpus"]:
        return corpus_files(kw["corpus"])
    source = kw["input_file"]
    if source is not None and source.name not in ("<stdin>", "-"):
        return [(Path(source.name), "text")]
    out.mkdir(parents=True, exist_ok=True)
    kept = out / "_input.txt"
    text = kw["text"] if kw["text"] is not None else (source or sys.stdin).read()
    text = text if text.endswith("\n") else text + "\n"
    if kept.exists() and kept.read_text(encoding="utf-8") != text:
        raise InputError("this folder holds a job over other texts; give another --output folder", path=str(out))
    kept.write_text(text, encoding="utf-8")
    return [(kept, "text")]


def _graph(store: str | None) -> Any:
    if store is None:
        return None
    graph = get_host().call("kgc_open_graph", store=store, extractor=None)
    if graph is None:
        raise click.UsageError("no plugin opens knowledge graphs: pip install 'kgcore[graph]'")
    return graph


def predict_job(**kw: Any) -> None:
    from kgcore.prediction import RecordRequests
    from kgcore.jsonl import read_jsonl

    from .workers import PredictWorker

    output = Path(kw["output_path"])
    files = [(Path(kw["input_path"]), "jsonl")]
    shards, shard_size = _plan(files, kw["shard_size"], "instruction")
    task_options = task_option_pairs(kw["task_option"], click.get_current_context().args)
    style, params = prompt_and_params(kw["template"], kw["system"], kw["max_new_tokens"], kw["temperature"],
                                      kw["constrained"], kw["quote"])
    requests = RecordRequests(style, params.constrained, kw["task"], task_options, quote=params.quote)
    for _, record in read_jsonl(files[0][0]):
        if requests.task_for(record) is None:
            raise InputError("no task: give -t TASK or a 'task' field", path=str(files[0][0]), field="task")
        break  # an unknown task fails before any answer is generated
    backend, backend_options = _backend(kw)
    folder = ShardFolder(Path(f"{output}.shards"), "jsonl", {
        "command": "predict", "inputs": _fingerprint(files), "task": kw["task"], "task_options": task_options,
        "backend": backend, "backend_options": _public(backend_options), "style": [style.template, style.system],
        "params": [params.max_new_tokens, params.temperature, params.constrained, params.quote],
        "shard_size": shard_size})
    folder.open(shards)
    config = {"task": kw["task"], "task_options": task_options, "style": style, "params": params,
              "backend": backend, "backend_options": backend_options, "batch_size": kw["batch_size"]}
    done = folder.done(shards)
    progress = Progress("predict (ray)", shards, done, kw["quiet"])

    def finished(number: int, lines: str, counts: dict[str, Any]) -> None:
        folder.write(number, lines)
        progress.add(number, counts)

    try:
        run_shards(PredictWorker, config, [s for s in shards if s.number not in done], _cluster(kw), finished)
    finally:
        meta = progress.close()
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("wb") as fh:
        for shard in shards:
            with folder.part(shard.number).open("rb") as part:
                shutil.copyfileobj(part, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, output)
    meta.update({"engine": "ray", "backend": backend, "model": str(backend_options.get("model", "")),
                 "input": str(kw["input_path"]), "output": str(output), "records": meta["documents"]})
    Path(f"{output}.meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    click.echo(f"{meta['records']} records ({meta['answered_now']} answered now) in {meta['seconds']:.1f} s on Ray "
               f"-> {output}", err=True)
