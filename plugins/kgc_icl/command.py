"""``kgc icl``: the command this plugin adds to the kgc command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click
from kgcore.cli import backend_options, make_backend, prompt_and_params, read_texts, text_input
from kgcore.errors import InputError

from .prompts import TASKS


@click.command()
@text_input
@click.option("--text", "--text_input", "--text-input", "text_option", default=None, help="Same as TEXT.")
@click.option("-t", "--task", required=True, type=click.Choice(TASKS, case_sensitive=False))
@click.option("--language", default="en", show_default=True, help="en or zh (ch and cn are accepted).")
@click.option("-l", "--labels", default=None,
              help="Entity types / candidate relations, split on ',' or '，' (DA: required).")
@click.option("--domain", default=None, help="Domain named in the default instruction.")
@click.option("--instruction", default=None, help="Custom instruction instead of the default one.")
@click.option("--examples", "--data-path", "--data_path", "examples_path", type=click.Path(exists=True, path_type=Path),
              default=None, help="Few-shot examples: a reference example file, or a folder with "
                                 "{task}_{en|zh|ch|cn}.json.")
@click.option("--zero-shot", is_flag=True, help="No examples (the default without --examples).")
@click.option("--head-entity", "--head_entity", default=None, help="RE: head entity.")
@click.option("--head-type", "--head_type", default=None, help="RE: head entity type.")
@click.option("--tail-entity", "--tail_entity", default=None, help="RE: tail entity.")
@click.option("--tail-type", "--tail_type", default=None, help="RE: tail entity type.")
@click.option("--triples/--no-triples", default=True, show_default=True, help="Add (head, relation, tail) triples.")
@click.option("--raw", is_flag=True, help="Also print the model's raw answer.")
@click.option("--show-prompt", is_flag=True, help="Also print the prompt.")
@click.option("--dry-run", is_flag=True, help="Print the prompts (JSON lines) without running a model.")
@backend_options
def icl(text, input_file, text_option, task, language, labels, domain, instruction, examples_path, zero_shot,
        head_entity, head_type, tail_entity, tail_type, triples, raw, show_prompt, dry_run, backend, model,
        backend_option, template, system, max_new_tokens, temperature, constrained, quote, batch_size):
    """In-context learning (zero/few-shot) for ner, re, ee, rte, da through any backend: one JSON line per text.

    The text (DA: the relation to augment) is TEXT, or one per line of --input or standard input; a
    line that is a JSON object {"text", "head_entity", "head_type", "tail_entity", "tail_type"} sets
    its own RE pair.
    """
    from .prompts import load_examples
    from .run import IclSpec, icl_prompts, run_icl

    if text is not None and text_option is not None:
        raise click.UsageError("give TEXT or --text, not both")
    text = text_option if text is None else text
    if zero_shot and examples_path is not None:
        raise click.UsageError("--zero-shot and --examples contradict each other")
    spec = IclSpec(task, language, labels or (), domain or None, instruction,
                   tuple(load_examples(task, language, examples_path)) if examples_path else (),
                   head_entity, head_type, tail_entity, tail_type)
    items = read_items(text, input_file)
    if text is not None:
        spec.prompt(text)  # bad input (RE without its pair, ...) fails before a model is loaded
    if dry_run:
        for doc, item_spec, prompt in icl_prompts(items, spec):
            click.echo(json.dumps({"text": doc, "task": item_spec.task, "language": item_spec.language,
                                   **(item_spec.pair or {}), "prompt": prompt}, ensure_ascii=False))
        return
    style, params = prompt_and_params(template, system, max_new_tokens, temperature, constrained, quote)
    engine = make_backend(backend, model, backend_option)
    try:
        for result in run_icl(items, engine, spec, style=style, params=params, batch_size=batch_size):
            click.echo(json.dumps(result.as_dict(triples, raw, show_prompt), ensure_ascii=False))
    finally:
        engine.close()


def read_items(text: str | None, input_file: TextIO | None) -> Iterator[str | dict[str, Any]]:
    """The texts of ``kgcore.cli.read_texts``; a line that is a JSON object with a ``text`` string is
    read as that object."""
    return _items(read_texts(text, input_file), getattr(input_file, "name", "-"))


def _items(lines: Iterator[tuple[int, str]], where: str) -> Iterator[str | dict[str, Any]]:
    for number, line in lines:
        value = None
        if number and line.lstrip().startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                pass
        if not isinstance(value, dict):
            yield line
        elif isinstance(value.get("text"), str):
            yield value
        else:
            raise InputError("a JSON line needs a 'text' string", path=where, line=number, field="text")
