"""The ``kgc`` command line: a thin layer over the Python API.

Plugin commands (``kgc_register_commands``) reuse the option groups defined here, so that every
command takes texts, labels, task options and backends the same way: :func:`text_input`,
:func:`backend_options`, :func:`task_options`, with :func:`read_texts` and :func:`make_backend`.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import InputError, KGCError
from .plugins import get_host

_PATH = click.Path(dir_okay=False, path_type=Path)
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
#: Commands that read unknown ``--name value`` options as task options (``--relation-keys`` of earlier versions).
_OPEN = {"ignore_unknown_options": True, "allow_extra_args": True}


class KgcGroup(click.Group):
    """Prints kgc errors as one line; ``--debug`` (or ``KGC_DEBUG=1``) shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug") or os.environ.get("KGC_DEBUG") == "1":
                raise
            raise click.ClickException(str(exc) if isinstance(exc, KGCError) else
                                       f"{type(exc).__name__}: {exc} (run with --debug for the traceback)") from None


@click.group(cls=KgcGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="kgc")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--local_rank", "--local-rank", type=int, hidden=True, help="Set by DeepSpeed's launcher; unused.")
def cli(debug: bool, local_rank: int | None) -> None:
    """kgc: build knowledge graphs from text with instruction-tuned LLMs."""


# -- option groups shared with plugin commands ------------------------------------------------

def _apply(fn, options):
    for option in reversed(options):
        fn = option(fn)
    return fn


def text_input(fn):
    """TEXT argument or ``-i FILE`` (one text per line; ``-`` or nothing: standard input)."""
    return _apply(fn, [
        click.argument("text", required=False),
        click.option("-i", "--input", "input_file", type=click.File("r", encoding="utf-8"), default=None,
                     help="File of texts, one per line ('-' for standard input)."),
    ])


def read_texts(text: str | None, input_file: Any) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of :func:`text_input`: the argument (line 0), else the file's non-blank lines,
    else standard input's."""
    if text is not None and input_file is not None:
        raise click.UsageError("give TEXT or --input, not both")
    if text is not None:
        return iter([(0, text)])
    return ((number, line.rstrip("\r\n")) for number, line in enumerate(input_file or sys.stdin, 1) if line.strip())


def task_options(fn):
    """``-T KEY=VALUE`` options of the task (``kgc tasks --options NAME`` lists them)."""
    return click.option("-T", "--task-option", "task_option", multiple=True, metavar="KEY=VALUE",
                        help="Task option (repeatable); `kgc tasks --options TASK` lists them.")(fn)


def task_option_pairs(pairs: tuple[str, ...], extra: list[str] = ()) -> dict[str, str]:
    """``-T`` pairs plus unknown ``--name value`` / ``--name`` / ``--no-name`` options as ``name=value``."""
    from .options import parse_pairs

    out, args = parse_pairs(pairs, "task option"), list(extra)
    while args:
        token = args.pop(0)
        if not token.startswith("--") or token == "--":
            raise click.UsageError(f"unexpected argument '{token}'")
        name, sep, value = token[2:].partition("=")
        if not sep:
            if name.startswith("no-"):
                name, value = name[3:], "false"
            elif args and not args[0].startswith("-"):
                value = args.pop(0)
            else:
                value = "true"
        out[name.replace("-", "_")] = value
    return out


def backend_options(fn):
    """Options of commands that run a model: backend, model, backend options, prompt and decoding."""
    return _apply(fn, [
        click.option("-b", "--backend", default=None, help="Backend; default: the one `kgc backends` marks."),
        click.option("-m", "--model", default=None, help="Model path or name for the backend."),
        click.option("-O", "--option", "backend_option", multiple=True, metavar="KEY=VALUE",
                     help="Backend option (repeatable); `kgc backends --options NAME` lists them."),
        click.option("--template", default="auto", show_default=True,
                     help="Chat template name or YAML file; auto = the model's own template."),
        click.option("--system", default=None, help="System prompt."),
        click.option("--max-new-tokens", type=int, default=512, show_default=True),
        click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy."),
        click.option("--constrained/--no-constrained", default=True, show_default=True,
                     help="Constrain answers to the task's JSON Schema where the backend can."),
        click.option("--quote/--no-quote", default=True, show_default=True,
                     help="Constrained answers only quote the text: their strings are spans of the input."),
        click.option("--batch-size", type=int, default=8, show_default=True),
    ])


def make_backend(backend: str | None, model: str | None, backend_option: tuple[str, ...]):
    """The backend of :func:`backend_options` (``None``: the default backend)."""
    from .backend import load_backend
    from .options import parse_pairs

    pairs = parse_pairs(backend_option, "backend option")
    if model is not None:
        pairs["model"] = model
    return load_backend(backend, pairs)


def prompt_and_params(template: str, system: str | None, max_new_tokens: int, temperature: float,
                      constrained: bool, quote: bool = True):
    """``(PromptStyle, GenerationParams)`` of :func:`backend_options`."""
    from .backend import GenerationParams
    from .prompt import PromptStyle

    return PromptStyle(template, system), GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                                           constrained=constrained, quote=quote)


# -- commands ----------------------------------------------------------------------------------

@cli.command(context_settings=_OPEN)
@click.option("-i", "--input", "--src_path", "input_path", type=_EXISTING, required=True,
              help="Annotated samples, one JSON object per line (sample.json form).")
@click.option("-o", "--output", "--tgt_path", "output_path", type=_PATH, default=None,
              help="Where to write instruction records (default: standard output).")
@click.option("-s", "--schema", "--schema_path", "schema_path", type=_EXISTING, required=True,
              help="Schema file: the 3-line form, a JSON list/dict, or a JSON/YAML {labels: [...]} file.")
@click.option("-t", "--task", required=True, help="Task name (see `kgc tasks`), e.g. NER, RE, EE.")
@task_options
@click.option("--language", default="zh", show_default=True, help="Instruction language (zh or en).")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--split-num", "--split_num", type=int, default=None,
              help="Most schema items per instruction; -1 for all. Default: the task's (NER 6, KG 1, others 4).")
@click.option("--neg-schema", "--neg_schema", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of negative labels kept in training instructions.")
@click.option("--order", type=click.Choice(["sorted", "file", "random"]), default=None,
              help="Schema order: sorted (default), as in the schema file, or seeded random.")
@click.option("--random-sort", "--random_sort", is_flag=True, help="Same as --order random.")
@click.option("--hard-negatives", "--hard_negative_path", "hard_negative_path", type=_EXISTING, default=None,
              help="JSON {label: [confusable labels]}: sample hard negatives (the reference's cluster mode).")
@click.option("--hard-negative-section", default=None, help="TASK/DATASET inside a nested file such as hard_dict.json.")
@click.option("--cluster-mode", "--cluster_mode", is_flag=True, help="Require --hard-negatives (reference flag).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--source", default=None, help="Source name in records (default: the input's folder name).")
@click.option("--instruction", default=None, help="Registered instruction name (see `kgc templates`) or literal text.")
@click.option("--examples", "examples_path", type=_EXISTING, default=None,
              help="Few-shot examples (JSON list or JSON lines of {input, output}) added as the 'example' field.")
@click.option("--descriptions/--no-descriptions", default=None,
              help="Schema with label descriptions (default: when the schema file has any).")
@click.option("--reader", default="jsonl", show_default=True, help="Dataset reader (see `kgc plugins`).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Convert only the first N records.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def convert(ctx, input_path, output_path, schema_path, task, task_option, language, split, split_num, neg_schema,
            order, random_sort, hard_negative_path, hard_negative_section, cluster_mode, seed, source, instruction,
            examples_path, descriptions, reader, limit, quiet):
    """Convert annotated samples into IEPile-style instruction records.

    Task options (-T KEY=VALUE, or --KEY VALUE) are written into the records, e.g. -T
    relation_keys=subject_object for RE; `kgc tasks --options TASK` lists them.
    """
    from .conversion import convert as run_convert, load_hard_negatives
    from .task import ConvertOptions, load_task

    if cluster_mode and hard_negative_path is None:
        raise click.UsageError("--cluster_mode needs --hard_negative_path")
    if random_sort and order not in (None, "random"):
        raise click.UsageError("--random_sort conflicts with --order " + order)
    options = ConvertOptions(
        split=split, language=language, split_num=split_num, neg_schema=neg_schema,
        order="random" if random_sort else (order or "sorted"),
        hard_negatives=load_hard_negatives(hard_negative_path, hard_negative_section) if hard_negative_path else None,
        seed=seed, source=source or "", descriptions=descriptions,
        examples=tuple(_read_examples(examples_path)) if examples_path else ())
    task_obj = load_task(task, task_option_pairs(task_option, ctx.args))
    stats = run_convert(input_path, output_path, task=task_obj, schema=schema_path, options=options,
                        instruction=instruction, reader=reader, limit=limit, progress=not quiet)
    click.echo(f"{stats.records} records -> {stats.instructions} instructions ({stats.skipped} skipped)"
               + (f" in {stats.output}" if stats.output != "-" else ""), err=True)


def _read_examples(path: Path) -> list[dict]:
    from .jsonl import read_jsonl

    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        examples = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        examples = [value for _, value in read_jsonl(path)]
    for number, example in enumerate(examples, 1):
        if not isinstance(example, dict) or "input" not in example or "output" not in example:
            raise InputError("each example needs 'input' and 'output'", path=str(path), line=number)
    return examples


@cli.command()
@click.argument("path", type=_EXISTING, required=False)
@click.option("-i", "--input", "--path1", "input_path", type=_EXISTING, default=None,
              help="Predictions: converted test records with the model's 'output'.")
@click.option("-t", "--task", default=None, help="Task name (default: the records' 'task' field).")
@click.option("--scorer", default="f1", show_default=True)
@click.option("--match", "--match_mode", "match", type=click.Choice(["multiset", "set", "normal"]), default="multiset",
              show_default=True, help="multiset counts duplicates (the reference's 'normal'); set de-duplicates.")
@click.option("--by-source/--no-by-source", default=True, show_default=True, help="Per-source breakdown.")
@click.option("--sort_by", "sort_by", default=None, hidden=True)
@click.option("--reference-rounding", is_flag=True,
              help="Round P and R to 2 decimals before F1, exactly as the reference evaluator.")
@click.option("-o", "--report", "report_path", type=_PATH, default=None, help="Write the JSON report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the table.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def evaluate(path, input_path, task, scorer, match, by_source, sort_by, reference_rounding, report_path, as_json,
             quiet):
    """Score predictions: P/R/F1 per task metric and source, with parse failures."""
    from .evaluation import evaluate as run_evaluate, format_report

    path = path or input_path
    if path is None:
        raise click.UsageError("give the predictions file (PATH or --input)")
    report = run_evaluate(path, task=task, scorer=scorer, match="multiset" if match == "normal" else match,
                          by_source=by_source or bool(sort_by), reference_rounding=reference_rounding,
                          progress=not quiet)
    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json else format_report(report))


@cli.command(context_settings=_OPEN)
@click.option("-i", "--input", "--input_file", "input_path", type=_EXISTING, required=True,
              help="Converted test records (kgc convert --split test).")
@click.option("-o", "--output", "--output_file", "output_path", type=_PATH, required=True,
              help="Predictions: the input records plus 'output'. An existing file is resumed.")
@click.option("-t", "--task", default=None, help="Task (default: the records' 'task' field).")
@task_options
@backend_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def predict(ctx, input_path, output_path, task, task_option, backend, model, backend_option, template, system,
            max_new_tokens, temperature, constrained, quote, batch_size, quiet):
    """Answer converted instructions with a model (resumable).

    Each record is answered with the task options it was converted with; -T KEY=VALUE overrides them.
    """
    from .prediction import predict as run_predict

    overrides = task_option_pairs(task_option, ctx.args)
    style, params = prompt_and_params(template, system, max_new_tokens, temperature, constrained, quote)
    engine = make_backend(backend, model, backend_option)
    try:
        meta = run_predict(input_path, output_path, engine, task=task, task_options=overrides, style=style,
                           params=params, batch_size=batch_size, progress=not quiet)
    finally:
        engine.close()
    click.echo(f"{meta['records']} records ({meta['answered_now']} answered now) in {meta['seconds']:.1f} s; "
               f"{meta['completion_tokens_per_s']} tok/s -> {output_path}", err=True)


@cli.command()
@text_input
@click.option("-t", "--task", required=True, help="Task, e.g. NER, RE, EE.")
@click.option("-l", "--labels", default=None, help="Comma-separated labels (events/KG: type:role1/role2).")
@click.option("-s", "--schema", "schema_path", type=_EXISTING, default=None, help="Schema file instead of --labels.")
@task_options
@click.option("--language", type=click.Choice(["auto", "en", "zh"]), default="auto", show_default=True,
              help="Instruction language; auto: zh for a text with Chinese characters, else en.")
@click.option("--split-num", type=int, default=None, help="Labels per instruction (default: the task's).")
@click.option("--triples/--no-triples", default=True, show_default=True, help="Add (head, relation, tail) triples.")
@click.option("--raw", is_flag=True, help="Also print the model's raw answers.")
@click.option("--graph", "graph_store", default=None, metavar="STORE", help="Also add the results to this knowledge "
              "graph (a folder; see `kgc graph --help`).")
@backend_options
def extract(text, input_file, task, labels, schema_path, task_option, language, split_num, triples, raw, graph_store,
            backend, model, backend_option, template, system, max_new_tokens, temperature, constrained, quote,
            batch_size):
    """Extract from text: one JSON line per document (result, triples, spans)."""
    from .extraction import Extractor, labels_schema
    from .schema import load_schema
    from .task import load_task

    if (labels is None) == (schema_path is None):
        raise click.UsageError("give either --labels or --schema")
    task_obj = load_task(task, task_option_pairs(task_option))
    schema = load_schema(schema_path, task_obj) if schema_path else labels_schema(labels.split(","), task_obj)
    style, params = prompt_and_params(template, system, max_new_tokens, temperature, constrained, quote)
    texts = (line for _, line in read_texts(text, input_file))
    engine, graph = make_backend(backend, model, backend_option), None
    try:
        extractor = Extractor(task_obj, schema, backend=engine,
                              language=language, split_num=split_num, style=style, params=params, batch_size=batch_size)
        if graph_store and not (graph := get_host().call("kgc_open_graph", store=graph_store, extractor=extractor)):
            raise click.UsageError("no plugin opens knowledge graphs: pip install 'kgcore[graph]'")
        for extraction in extractor.extract(texts):
            click.echo(json.dumps(extraction.as_dict(triples, raw), ensure_ascii=False))
            if graph:
                graph.add([extraction])
    finally:
        engine.close()
        if graph:
            graph.close()


# -- start-up ----------------------------------------------------------------------------------

def _with_run_hooks(command: click.Command, name: str) -> None:
    """Wrap a command's callback so that ``kgc_run_start`` / ``kgc_run_end`` fire around it."""
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            _with_run_hooks(sub, f"{name} {sub_name}")
        return
    callback = command.callback
    if callback is None or getattr(callback, "_kgc_run", False):
        return

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        options = json.loads(json.dumps(kwargs, default=lambda v: str(getattr(v, "name", v))))  # JSON-ready
        with get_host().run(name, options) as current:
            result = callback(*args, **kwargs)
            current.result = current.result if result is None else result
            return result

    run._kgc_run = True  # type: ignore[attr-defined]
    command.callback = run


def _format_warning(message, category, filename, lineno, line=None):
    return f"kgc: warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    warnings.formatwarning = _format_warning
    try:
        get_host().add_commands(cli)
    except KGCError as exc:  # strict plugin mode: one line, like errors inside commands
        if os.environ.get("KGC_DEBUG") == "1" or "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    for name, command in cli.commands.items():
        _with_run_hooks(command, name)
    cli.main(args=argv, prog_name="kgc")


if __name__ == "__main__":  # python -m kgcore.cli (torchrun)
    sys.exit(main())
