"""The ``kgc`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from . import __version__
from .errors import InputError, KGCError
from .plugins import get_host

_PATH = click.Path(dir_okay=False, path_type=Path)
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


class KgcGroup(click.Group):
    """Prints kgc errors as one line; ``--debug`` (or ``KGC_DEBUG=1``) shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KGCError as exc:
            if _debug(ctx):
                raise
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            if _debug(ctx):
                raise
            raise click.ClickException(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)") from None


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("KGC_DEBUG") == "1"


@click.group(cls=KgcGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="kgc")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """kgc: build knowledge graphs from text with instruction-tuned LLMs."""


@cli.command()
@click.option("-i", "--input", "--src_path", "input_path", type=_EXISTING, required=True,
              help="Annotated samples, one JSON object per line (sample.json form).")
@click.option("-o", "--output", "--tgt_path", "output_path", type=_PATH, default=None,
              help="Where to write instruction records (default: standard output).")
@click.option("-s", "--schema", "--schema_path", "schema_path", type=_EXISTING, required=True,
              help="Schema file: the 3-line form, a JSON list/dict, or a JSON/YAML {labels: [...]} file.")
@click.option("-t", "--task", required=True, help="Task name (see `kgc tasks`), e.g. NER, RE, EE.")
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
@click.option("--relation-keys", type=click.Choice(["head_tail", "subject_object"]), default="head_tail",
              show_default=True, help="Keys of RE answers (IEPile/OneKE data use subject_object).")
@click.option("--mention-order", type=click.Choice(["annotation", "position"]), default="annotation",
              show_default=True, help="Order of mentions in answers: as annotated, or by position in the text.")
@click.option("--eea-test-triggers/--no-eea-test-triggers", default=True, show_default=True,
              help="EEA test instructions name the gold triggers, as training ones do.")
@click.option("--reader", default="jsonl", show_default=True, help="Dataset reader (see `kgc plugins`).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Convert only the first N records.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def convert(input_path, output_path, schema_path, task, language, split, split_num, neg_schema, order, random_sort,
            hard_negative_path, hard_negative_section, cluster_mode, seed, source, instruction, examples_path,
            descriptions, relation_keys, mention_order, eea_test_triggers, reader, limit, quiet):
    """Convert annotated samples into IEPile-style instruction records."""
    from .conversion import convert as run_convert, load_hard_negatives
    from .task import ConvertOptions

    if cluster_mode and hard_negative_path is None:
        raise click.UsageError("--cluster_mode needs --hard_negative_path")
    if random_sort and order not in (None, "random"):
        raise click.UsageError("--random_sort conflicts with --order " + order)
    options = ConvertOptions(
        split=split, language=language, split_num=split_num, neg_schema=neg_schema,
        order="random" if random_sort else (order or "sorted"),
        hard_negatives=load_hard_negatives(hard_negative_path, hard_negative_section) if hard_negative_path else None,
        seed=seed, source=source or "", descriptions=descriptions,
        examples=tuple(_read_examples(examples_path)) if examples_path else (),
        mention_order=mention_order, relation_keys=relation_keys, eea_test_triggers=eea_test_triggers)
    stats = run_convert(input_path, output_path, task=task, schema=schema_path, options=options,
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


def _backend_options(fn):
    """Options shared by commands that run a model."""
    options = [
        click.option("-b", "--backend", default="llamacpp", show_default=True, help="Backend (see `kgc backends`)."),
        click.option("-m", "--model", default=None, help="Model path or name for the backend."),
        click.option("-O", "--option", "backend_options", multiple=True, metavar="KEY=VALUE",
                     help="Backend option (repeatable); `kgc backends --options NAME` lists them."),
        click.option("--template", default="auto", show_default=True,
                     help="Chat template name or YAML file; auto = the model's own template."),
        click.option("--system", default=None, help="System prompt."),
        click.option("--max-new-tokens", type=int, default=512, show_default=True),
        click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy."),
        click.option("--constrained/--no-constrained", default=True, show_default=True,
                     help="Constrain answers to the task's JSON Schema where the backend can."),
        click.option("--batch-size", type=int, default=8, show_default=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _make_backend(backend, model, backend_options):
    from .prediction import load_backend

    pairs = {}
    for item in backend_options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"backend option '{item}' is not KEY=VALUE")
        pairs[key.strip()] = value
    if model is not None:
        pairs["model"] = model
    return load_backend(backend, pairs)


def _run_params(max_new_tokens, temperature, constrained):
    from .backend import GenerationParams

    return GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, constrained=constrained)


@cli.command()
@click.option("-i", "--input", "--input_file", "input_path", type=_EXISTING, required=True,
              help="Converted test records (kgc convert --split test).")
@click.option("-o", "--output", "--output_file", "output_path", type=_PATH, required=True,
              help="Predictions: the input records plus 'output'. An existing file is resumed.")
@click.option("-t", "--task", default=None, help="Task (default: the records' 'task' field).")
@click.option("--relation-keys", type=click.Choice(["head_tail", "subject_object"]), default="head_tail",
              show_default=True, help="RE answer keys the constrained schema asks for.")
@_backend_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def predict(input_path, output_path, task, relation_keys, backend, model, backend_options, template, system,
            max_new_tokens, temperature, constrained, batch_size, quiet):
    """Answer converted instructions with a model (resumable)."""
    from .prediction import PromptStyle, predict as run_predict

    engine = _make_backend(backend, model, backend_options)
    try:
        meta = run_predict(input_path, output_path, engine, task=task, style=PromptStyle(template, system),
                           params=_run_params(max_new_tokens, temperature, constrained), batch_size=batch_size,
                           relation_keys=relation_keys, progress=not quiet)
    finally:
        engine.close()
    click.echo(f"{meta['records']} records ({meta['answered_now']} answered now) in {meta['seconds']:.1f} s; "
               f"{meta['completion_tokens_per_s']} tok/s -> {output_path}", err=True)


@cli.command()
@click.argument("text", required=False)
@click.option("-i", "--input", "input_path", type=click.File("r", encoding="utf-8"), default=None,
              help="File of documents, one per line ('-' for standard input).")
@click.option("-t", "--task", required=True, help="Task, e.g. NER, RE, EE.")
@click.option("-l", "--labels", default=None, help="Comma-separated labels (events/KG: type:role1/role2).")
@click.option("-s", "--schema", "schema_path", type=_EXISTING, default=None, help="Schema file instead of --labels.")
@click.option("--language", type=click.Choice(["auto", "en", "zh"]), default="auto", show_default=True,
              help="Instruction language; auto: zh for a text with Chinese characters, else en.")
@click.option("--split-num", type=int, default=None, help="Labels per instruction (default: the task's).")
@click.option("--triples/--no-triples", default=True, show_default=True, help="Add (head, relation, tail) triples.")
@click.option("--raw", is_flag=True, help="Also print the model's raw answers.")
@_backend_options
def extract(text, input_path, task, labels, schema_path, language, split_num, triples, raw, backend, model,
            backend_options, template, system, max_new_tokens, temperature, constrained, batch_size):
    """Extract from text: one JSON line per document."""
    from .extraction import extract as run_extract, labels_schema
    from .prediction import PromptStyle
    from .schema import load_schema

    if (labels is None) == (schema_path is None):
        raise click.UsageError("give either --labels or --schema")
    if text is not None and input_path is not None:
        raise click.UsageError("give TEXT or --input, not both")
    task_obj = get_host().registry.load("task", task)()
    schema = load_schema(schema_path, task_obj.schema_kind) if schema_path else labels_schema(labels.split(","))
    docs = [text] if text is not None else (line.rstrip("\n") for line in (input_path or sys.stdin) if line.strip())
    engine = _make_backend(backend, model, backend_options)
    try:
        for extraction in run_extract(docs, engine, task=task, schema=schema, language=language, split_num=split_num,
                                      style=PromptStyle(template, system),
                                      params=_run_params(max_new_tokens, temperature, constrained),
                                      batch_size=batch_size):
            click.echo(json.dumps(extraction.as_dict(triples, raw), ensure_ascii=False))
    finally:
        engine.close()


@cli.command()
@click.option("--text", "--text_input", "--text-input", "text", default=None, help="The input text (DA: the relation).")
@click.option("-i", "--input", "input_path", type=click.File("r", encoding="utf-8"), default=None,
              help="File of texts, one per line ('-' for standard input); a JSON-object line "
                   "{text, head_entity, ...} sets its own RE pair.")
@click.option("-t", "--task", required=True, type=click.Choice(["ner", "re", "ee", "rte", "da"], case_sensitive=False))
@click.option("--language", default="en", show_default=True, help="en or zh (ch and cn are accepted).")
@click.option("-l", "--labels", default=None, help="Entity types / candidate relations, split on ',' or '，' (DA: required).")
@click.option("--domain", default=None, help="Domain named in the default instruction.")
@click.option("--instruction", default=None, help="Custom instruction instead of the default one.")
@click.option("--examples", "--data-path", "--data_path", "examples_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="Few-shot examples: a reference example file, or a folder with {task}_{en|zh|ch|cn}.json.")
@click.option("--zero-shot", is_flag=True, help="No examples (the default without --examples).")
@click.option("--head-entity", "--head_entity", default=None, help="RE: head entity.")
@click.option("--head-type", "--head_type", default=None, help="RE: head entity type.")
@click.option("--tail-entity", "--tail_entity", default=None, help="RE: tail entity.")
@click.option("--tail-type", "--tail_type", default=None, help="RE: tail entity type.")
@click.option("--triples/--no-triples", default=True, show_default=True, help="Add (head, relation, tail) triples.")
@click.option("--raw", is_flag=True, help="Also print the model's raw answer.")
@click.option("--show-prompt", is_flag=True, help="Also print the prompt.")
@click.option("--dry-run", is_flag=True, help="Print the prompts (JSON lines) without running a model.")
@_backend_options
def icl(text, input_path, task, language, labels, domain, instruction, examples_path, zero_shot, head_entity,
        head_type, tail_entity, tail_type, triples, raw, show_prompt, dry_run, backend, model, backend_options,
        template, system, max_new_tokens, temperature, constrained, batch_size):
    """In-context learning (zero/few-shot) for ner, re, ee, rte, da through any backend: one JSON line per text."""
    from .icl import IclSpec, icl_prompts, load_examples, run_icl
    from .prediction import PromptStyle

    if (text is None) == (input_path is None):
        raise click.UsageError("give either --text or --input")
    if zero_shot and examples_path is not None:
        raise click.UsageError("--zero-shot and --examples contradict each other")
    spec = IclSpec(task, language, labels or (), domain or None, instruction,
                   tuple(load_examples(task, language, examples_path)) if examples_path else (),
                   head_entity, head_type, tail_entity, tail_type)

    def items():
        if text is not None:
            yield text
            return
        for number, line in enumerate(input_path, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    value = None
                if isinstance(value, dict):
                    if not isinstance(value.get("text"), str):
                        raise InputError("a JSON line needs a 'text' string", path=input_path.name, line=number,
                                         field="text")
                    yield value
                    continue
            yield line

    if text is not None:
        spec.prompt(text)  # bad input (RE without its pair, ...) fails before a model is loaded
    if dry_run:
        for doc, item_spec, prompt in icl_prompts(items(), spec):
            click.echo(json.dumps({"text": doc, "task": item_spec.task, "language": item_spec.language,
                                   **(item_spec.pair or {}), "prompt": prompt}, ensure_ascii=False))
        return
    engine = _make_backend(backend, model, backend_options)
    try:
        for result in run_icl(items(), engine, spec, style=PromptStyle(template, system),
                              params=_run_params(max_new_tokens, temperature, constrained), batch_size=batch_size):
            click.echo(json.dumps(result.as_dict(triples, raw, show_prompt), ensure_ascii=False))
    finally:
        engine.close()


def _train_options(fn):
    from .training import click_options

    for option in reversed(click_options()):
        fn = option(fn)
    return fn


@cli.command(context_settings={"max_content_width": 110})
@click.option("-c", "--config", "config_path", type=_EXISTING, default=None,
              help="YAML or JSON training config (see docs/training.md); the flags below override its values.")
@_train_options
def train(config_path, **flags):
    """Fine-tune a model on converted records (lora, qlora, full, freeze, ptuning, prefix).

    Also runs under torchrun: torchrun --nproc_per_node N -m kgcore.cli train --config run.yaml
    """
    from .training import load_config, overrides_from_cli, train as run_train

    result = run_train(load_config(config_path, overrides_from_cli(flags)))
    if int(os.environ.get("RANK", "0")) == 0:
        losses = f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}" if result.last_loss is not None else ""
        if result.last_eval_loss is not None:
            losses += f", eval loss {result.first_eval_loss:.4f} -> {result.last_eval_loss:.4f}"
        click.echo(f"{result.method} {result.produces} in {result.output_dir} ({losses}; "
                   f"{result.metrics.get('train_runtime', 0):.1f} s)\nPredict with: {result.predict_command}", err=True)


@cli.command()
@click.option("--options", "options_of", default=None, metavar="NAME", help="List one backend's options.")
def backends(options_of):
    """List inference backends."""
    import dataclasses

    registry = get_host().registry
    if options_of:
        backend_cls = registry.load("backend", options_of)
        for f in dataclasses.fields(backend_cls.Options):
            default = f.default if f.default is not dataclasses.MISSING else "(required)"
            click.echo(f"{f.name:<24} {str(f.type):<18} {default!r}")
        return
    for component in registry.components("backend"):
        click.echo(f"{component.name:<10} {component.summary}  [{component.plugin}]")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List installed plugins, their hooks, components and load errors."""
    host = get_host()
    registry = host.registry
    rows = []
    for info in host.plugins.values():
        components = [f"{c.kind}:{c.name}" for c in registry.components() if c.plugin == info.name]
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "module": info.module, "hooks": info.hooks, "components": components, "error": info.error})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        status = f"ERROR: {row['error']}" if row["error"] else f"{len(row['components'])} components"
        dist = f"{row['distribution']} {row['version']}".strip() or "-"
        click.echo(f"{row['name']:<24} {dist:<24} {status}")
        if row["components"]:
            click.echo(f"{'':<24} {', '.join(row['components'])}")


@cli.command()
def tasks():
    """List IE tasks."""
    for component in get_host().registry.components("task"):
        click.echo(f"{component.name:<8} {component.summary}  [{component.plugin}]")


@cli.command()
@click.option("--show", "show", default=None, help="Print one instruction text, or a chat template's rendering.")
def templates(show):
    """List instruction templates (TASK.LANGUAGE[.VARIANT]) and chat templates."""
    registry = get_host().registry
    if show and "." in show and not show.endswith((".yaml", ".yml")):  # TASK.LANGUAGE names
        instruction = registry.load("instruction", show)
        suffix = f"\n(with examples: +{instruction.example_suffix!r})" if instruction.example_suffix else ""
        click.echo(instruction.text + suffix)
        return
    if show == "auto":
        click.echo("auto: the model's own chat template (from its tokenizer or GGUF file) renders the instruction")
        return
    if show:
        from .chat import load_chat_template

        click.echo(load_chat_template(show, registry).render("{instruction}"))
        return
    click.echo("Instruction templates:")
    for component in registry.components("instruction"):
        click.echo(f"  {component.name:<16} {component.summary}…  [{component.plugin}]")
    click.echo("Chat templates (--template):")
    for component in registry.components("chat_template"):
        click.echo(f"  {component.name:<16} {component.summary}  [{component.plugin}]")


def _format_warning(message, category, filename, lineno, line=None):
    return f"kgc: warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    warnings.formatwarning = _format_warning
    try:
        get_host().call("kgc_register_commands", cli=cli)
    except KGCError as exc:  # strict plugin mode: one line, like errors inside commands
        if os.environ.get("KGC_DEBUG") == "1" or "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli.main(args=argv, prog_name="kgc")


if __name__ == "__main__":  # python -m kgcore.cli (torchrun)
    sys.exit(main())
