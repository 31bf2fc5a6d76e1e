"""``kgc graph``: build, query, look at, count, check, export and resolve knowledge graphs."""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from kgcore.cli import backend_options, make_backend, prompt_and_params, read_texts, text_input

_STORE = click.argument("store")


def _KIND(fn):
    """``--store KIND`` and ``-S KEY=VALUE`` store options; the command receives them as ``kind``."""
    fn = click.option("-S", "--store-option", "store_options", multiple=True, metavar="KEY=VALUE",
                      help="Option of the graph store (sparql: update_url, timeout, user, password; neo4j: user, "
                           "password, database).")(fn)
    return click.option("--store", "store_kind", default=None, metavar="KIND", help="Graph store kind (oxigraph, "
                        "sparql, neo4j); default: from STORE (a folder: oxigraph).")(_with_kind(fn))


def _with_kind(fn):
    @functools.wraps(fn)
    def wrapper(*args, store_kind=None, store_options=(), **kwargs):
        return fn(*args, kind=(store_kind, store_options), **kwargs)
    return wrapper


def _open(store: str, kind: tuple[str | None, tuple[str, ...]] | None, read_only: bool = False):
    from kgcore.options import parse_pairs

    from .graph import Graph

    name, pairs = kind or (None, ())
    return Graph.open(store, name, read_only=read_only, **parse_pairs(pairs, "store option"))


@click.group()
def graph():
    """Knowledge graphs: build them from extractions, query, look at entities, export, resolve duplicates.

    STORE is a folder (an embedded Oxigraph store, created when missing), a SPARQL endpoint
    (http://host:port/query) or a Neo4j database (neo4j://host:port).
    """


class GraphWriter:
    """What ``kgc extract --graph STORE`` adds its results to."""

    def __init__(self, store: str, extractor: Any = None):
        from .sources import Sources

        self.graph, self.sources, self.pending = _open(store, None), Sources(getattr(extractor, "host", None)), []
        self.quads = 0  # statements written

    def add(self, extractions: list[Any]) -> None:
        self.pending += [self.sources.extraction(e) for e in extractions]
        if len(self.pending) >= 64:
            self.flush()

    def flush(self) -> None:
        self.quads += self.graph.add(self.pending).quads
        self.pending = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.graph.close()


@graph.command()
@_STORE
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@_KIND
@click.option("-t", "--task", default=None, help="Task of lines that do not name theirs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Documents written per transaction.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def build(store, files, kind, task, batch_size, quiet):
    """Add extraction results (kgc extract lines) and prediction files (kgc predict) to a graph.

    Each document gets a named graph; adding the same results again changes nothing, and a task's
    new result for a document replaces that task's old one.
    """
    from tqdm import tqdm

    from .sources import Sources

    sources = Sources()
    with _open(store, kind) as kg, tqdm(unit=" docs", desc="graph build", disable=quiet, file=sys.stderr) as bar:
        def documents():
            for doc in sources.files(files, task):
                bar.update(1)
                yield doc

        stats = kg.add(documents(), batch_size)
    click.echo(f"{stats.documents} documents: {stats.added} added, {stats.replaced} replaced, {stats.unchanged} "
               f"unchanged; {stats.quads} quads written; {sources.parse_failures} answers unparsed", err=True)


@graph.command("extract")
@_STORE
@text_input
@click.option("-t", "--task", "tasks", multiple=True, required=True,
              help="A task (repeatable: NER then RE reads relation arguments with the NER types).")
@click.option("-l", "--labels", "labels", multiple=True, required=True,
              help="The labels of each --task, in the same order (comma-separated).")
@click.option("--language", type=click.Choice(["auto", "en", "zh"]), default="auto", show_default=True)
@backend_options
def extract_into(store, text, input_file, tasks, labels, language, backend, model, backend_option, template, system,
                 max_new_tokens, temperature, constrained, quote, batch_size):
    """Extract with one or several tasks over the same texts and add every result to a graph."""
    from kgcore import Extractor

    from .sources import Sources

    if len(tasks) != len(labels):
        raise click.UsageError("give one --labels per --task")
    style, params = prompt_and_params(template, system, max_new_tokens, temperature, constrained, quote)
    texts = [line for _, line in read_texts(text, input_file)]
    engine = make_backend(backend, model, backend_option)
    try:
        extractors = [Extractor(t, labels=l.split(","), backend=engine, language=language, style=style,
                                params=params, batch_size=batch_size) for t, l in zip(tasks, labels)]
        sources = Sources(extractors[0].host)
        with _open(store, None) as kg:
            stats = kg.add(sources.extraction(e) for extractor in extractors for e in extractor.extract(texts))
    finally:
        engine.close()
    click.echo(f"{len(texts)} texts x {len(tasks)} tasks: {stats.added} documents added, {stats.replaced} replaced, "
               f"{stats.unchanged} unchanged", err=True)


@graph.command()
@_STORE
@click.argument("sparql")
@_KIND
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def query(store, sparql, kind, fmt):
    """Run a SPARQL 1.1 query over every document's graph (prefixes kgc, rdf, rdfs, owl, prov, xsd)."""
    with _open(store, kind, read_only=True) as kg:
        rows = kg.rows(sparql)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
        return
    _table(columns, [[_cell(r[c]) for c in columns] for r in rows])
    click.echo(f"({len(rows)} rows)", err=True)


@graph.command()
@_STORE
@click.argument("entity")
@_KIND
@click.option("--type", "type_", default=None, help="The entity's type (default: every type it has).")
@click.option("--facts", "limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Show the best-supported facts only (0: all).")
@click.option("--sources", type=click.IntRange(min=0), default=3, show_default=True,
              help="Documents shown per fact.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(store, entity, kind, type_, limit, sources, as_json):
    """An entity's facts, each with the documents that state it, its spans and their sentences."""
    with _open(store, kind, read_only=True) as kg:
        found = kg.find(entity, type_)
        if not found:
            close = kg.search(entity, 5)
            names = ", ".join(f"{c['label']} ({c['type']})" for c in close)
            hint = f"; did you mean: {names}" if close else ""
            raise click.ClickException(f"no entity '{entity}' in {store}{hint}")
        views = [kg.entity(iri, sources, limit or None) for iri in found]
    if as_json:
        click.echo(json.dumps(views, ensure_ascii=False, indent=2))
        return
    for view in views:
        click.echo(f"{view['label']} ({view['type']}) — {view['documents']} documents  {view['iri']}")
        if view["same_as"]:
            canonical = "" if view["canonical"] == view["iri"] else f"  (canonical: {view['canonical']})"
            click.echo(f"  same as: {', '.join(s['label'] for s in view['same_as'])}{canonical}")
        for fact in view["facts"]:
            other = fact["label"] or fact["value"]
            arrow = f"—{fact['predicate']}→ {other}" if fact["direction"] == "out" else f"←{fact['predicate']}— {other}"
            click.echo(f"  {arrow}  [{fact['support']} documents]")
            for source in fact["sources"]:
                click.echo(f"      {_highlight(source)}")
        if view["fact_count"] > len(view["facts"]):
            click.echo(f"  … {view['fact_count'] - len(view['facts'])} less-supported facts more (--facts 0 shows all)")
        if not view["facts"]:
            for source in view["mentions"]:
                click.echo(f"  {_highlight(source)}")


@graph.command()
@_STORE
@_KIND
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(store, kind, as_json):
    """How many documents, entities (per type), relations, events, mentions and quads."""
    with _open(store, kind, read_only=True) as kg:
        counts = kg.stats()
    if as_json:
        click.echo(json.dumps(counts, ensure_ascii=False, indent=2))
        return
    for name in ("documents", "entities", "relations", "events", "mentions", "quads"):
        click.echo(f"{name:<10} {counts[name]}")
        if name == "entities":
            for type_, n in counts["entity_types"].items():
                click.echo(f"  {type_:<16} {n}")


@graph.command()
@_STORE
@click.argument("doc_ids", nargs=-1, required=True)
@_KIND
def delete(store, doc_ids, kind):
    """Remove documents (by id) and every statement only they supported."""
    with _open(store, kind) as kg:
        removed = kg.delete(doc_ids)
    click.echo(f"{removed} of {len(doc_ids)} documents removed", err=True)


@graph.command()
@_STORE
@_KIND
def check(store, kind):
    """Check that every document's graph is exactly what its text and results give."""
    with _open(store, kind, read_only=True) as kg:
        problems = kg.check()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problems")
    click.echo("consistent", err=True)


@graph.command("export")
@_STORE
@_KIND
@click.option("-f", "--format", "fmt", required=True, help="Export format (ttl, trig, nq, jsonld, graphml, csv, "
              "cypher, neo4j-csv; `kgc plugins` lists the exporters).")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="File (a folder for csv and neo4j-csv); default: standard output.")
def export_graph(store, kind, fmt, output):
    """Write the graph in another format."""
    from kgcore import get_host

    exporter = get_host().registry.load("exporter", fmt)()
    with _open(store, kind, read_only=True) as kg:
        written = exporter.export(kg, output)
    if output is not None:
        click.echo(f"{fmt} -> {written}", err=True)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _table(columns: list[str], rows: list[list[str]]) -> None:
    widths = [min(60, max([len(c)] + [len(r[i]) for r in rows])) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    click.echo("  ".join("-" * w for w in widths))
    for row in rows:
        click.echo("  ".join((v if len(v) <= w else v[:w - 1] + "…").ljust(w) for v, w in zip(row, widths)))


def _highlight(source: dict[str, Any]) -> str:
    """The source sentence with the spans inside it in brackets, and the document."""
    sentence = source["sentence"]
    out, at = [], sentence["start"]
    for span in source["spans"]:
        if at <= span["start"] and span["end"] <= sentence["end"]:
            out += [sentence["text"][at - sentence["start"]:span["start"] - sentence["start"]], f"[{span['text']}]"]
            at = span["end"]
    out.append(sentence["text"][at - sentence["start"]:].rstrip())
    return f"{''.join(out)}  ({source['document']})"


@graph.command()
@_STORE
@_KIND
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Decisions file to write (JSON lines; an existing file is kept); default: standard output.")
@click.option("--threshold", type=click.FloatRange(0, 100), default=90.0, show_default=True,
              help="Lowest score (0-100) of a proposed pair.")
@click.option("--apply", "decisions", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Record the reviewed decisions of this file in the graph instead of proposing.")
@click.option("--by", default=None, help="Who decided, with --apply (default: the user name).")
def resolve(store, kind, output, threshold, decisions, by):
    """Propose merges of duplicate entities within a type, or record reviewed decisions (--apply).

    Proposing never changes the graph: each line of the decisions file is a proposal with
    "decision": null. Set it to "accept" or "reject", then apply the file; only accepted merges
    link entities, and every decision is kept as history (docs/graph.md).
    """
    from . import resolve as resolution

    if decisions is not None:
        with _open(store, kind) as kg:
            counts = resolution.apply(kg, decisions, by=by)
        click.echo(", ".join(f"{n} {name}" for name, n in counts.items()), err=True)
        return
    with _open(store, kind, read_only=True) as kg:
        proposals = resolution.propose(kg, threshold)
    lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in proposals)
    if output is None:
        click.echo(lines, nl=False)
    else:
        try:
            with output.open("x", encoding="utf-8") as out:
                out.write(lines)
        except FileExistsError:
            raise click.ClickException(f"{output} exists (it may hold decisions); choose another -o") from None
    click.echo(f"{len(proposals)} proposals ({sum(len(p['members']) for p in proposals)} entities)"
               + (f" -> {output}" if output else ""), err=True)
