"""Graph exports: every format, read back by another library (rdflib, networkx, csv, a Cypher reader here),
gives the same graph; awkward names (quotes, backslashes, control characters, emoji, right-to-left
scripts, Chinese, a very long string) come back exactly through ingest, SPARQL and every export."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import networkx
import pytest
import rdflib
from pyoxigraph import NamedNode
from rdflib.compare import isomorphic

from kgc_graph.export import Csv, Cypher, GraphMl, JsonLd, Neo4jCsv, NQuads, TriG, Turtle
from kgc_graph.graph import Graph
from kgc_graph.model import XSD, Document, Provenance, Result
from kgc_graph.property_graph import EDGE_KEYS, property_graph

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:rdflib")  # its parsers' own calls

QUOTED = 'Ada "the Countess" Lovelace'
BACKSLASH = "C:\\Program Files\\kgc\\"
NEWLINE = "first line\nsecond line"
TAB = "tab\tseparated"
EMOJI = "Rocket 🚀 crew 👩‍🚀"
ARABIC = "جامعة القاهرة"
HEBREW = "ירושלים\u200f העתיקה"
CHINESE = "北京大学"
LONG = "long " + "名字 x" * 2500 + " end"
SEPARATOR = "line\u2028separator 'single' `tick`"
NAMES = [QUOTED, BACKSLASH, NEWLINE, TAB, EMOJI, ARABIC, HEBREW, CHINESE, LONG, SEPARATOR]
RELATION = 'studied at `the` "place"\\'
PROVENANCE = Provenance("openai", 'model "x"', "run-1", "2024-05-01T10:00:00Z")


def _documents() -> list[Document]:
    text = " | ".join(NAMES) + " bombed"
    ner = Result("NER", {"person": [QUOTED, BACKSLASH, NEWLINE, TAB, HEBREW], "organization": [CHINESE, ARABIC],
                         "thing": [EMOJI, LONG, SEPARATOR]}, "mentions", provenance=PROVENANCE)
    re_ = Result("RE", {RELATION: [{"head": QUOTED, "tail": CHINESE}, {"head": HEBREW, "tail": ARABIC}],
                        "知道": [{"head": EMOJI, "tail": LONG}]}, "relations", provenance=PROVENANCE)
    ee = Result("EE", {"attack\nevent": [{"trigger": "bombed", "arguments": {
        "attacker": NEWLINE, "place": [CHINESE, ARABIC], 'victim "role"': TAB}}]}, "events")
    kg = Result("KG", {"person": {QUOTED: {"born in": "London", "type": "mathematician",
                                           "note": [BACKSLASH, NEWLINE, SEPARATOR]}}}, "attributes")
    again = Result("RE", {RELATION: [{"head": QUOTED, "tail": CHINESE}]}, "relations")
    return [Document('doc "1" \\ ünï', text, {"NER": ner, "RE": re_}),
            Document("doc/2 北京", text, {"NER": ner, "EE": ee, "KG": kg}),
            Document("doc 3", f"{QUOTED} studied at {CHINESE}.", {"RE": again, "NER": Result(
                "NER", {"person": [QUOTED], "organization": [CHINESE]}, "mentions")})]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("graph") / "kg"
    with Graph.open(str(path)) as graph:
        stats = graph.add(_documents())
    assert stats.added == 3
    return path


@pytest.fixture(scope="module")
def graph(store):
    with Graph.open(str(store), read_only=True) as graph:
        yield graph


@pytest.fixture(scope="module")
def pg(graph):
    return property_graph(graph.store.quads())


# -- the reference: the store's quads as rdflib terms, converted here -------------------------
def _rdflib(term):
    if isinstance(term, NamedNode):
        return rdflib.URIRef(term.value)
    datatype = term.datatype.value
    return rdflib.Literal(term.value, datatype=None if datatype == XSD + "string" else rdflib.URIRef(datatype))


def _store_quads(graph) -> set[tuple]:
    return {tuple(_rdflib(t) for t in (q.subject, q.predicate, q.object, q.graph_name)) for q in graph.store.quads()}


def _dataset_quads(path: Path, fmt: str) -> set[tuple]:
    dataset = rdflib.Dataset()
    dataset.parse(path, format=fmt)
    return {(s, p, o, getattr(g, "identifier", g)) for s, p, o, g in dataset.quads((None, None, None, None))}


def _flat(value):
    return ";".join(value) if isinstance(value, list) else value


# -- ingest and SPARQL ----------------------------------------------------------------------
def test_names_round_trip_through_ingest_and_sparql(graph):
    labels = {r["l"] for r in graph.rows("SELECT DISTINCT ?l WHERE { ?e a kgc:Entity ; rdfs:label ?l }")}
    assert labels == set(NAMES)
    relations = {r["l"] for r in graph.rows("SELECT DISTINCT ?l WHERE { ?p a kgc:Relation ; rdfs:label ?l }")}
    assert relations == {RELATION, "知道"}
    notes = {r["v"] for r in graph.rows("SELECT ?v WHERE { ?e <urn:kgc:attr:note> ?v }")}
    assert notes == {BACKSLASH, NEWLINE, SEPARATOR}
    roles = {(r["r"], r["l"]) for r in graph.rows(
        "SELECT ?r ?l WHERE { ?ev a kgc:Event ; ?p ?e . ?p a kgc:Role ; rdfs:label ?r . ?e rdfs:label ?l }")}
    assert roles == {("attacker", NEWLINE), ("place", CHINESE), ("place", ARABIC), ('victim "role"', TAB)}
    models = {r["m"] for r in graph.rows("SELECT DISTINCT ?m WHERE { ?run kgc:model ?m }")}
    assert models == {'model "x"'}


def test_property_graph(pg):
    nodes, edges = pg
    by_label = {n["label"]: n for n in nodes}
    assert len(nodes) == len(by_label) == len(NAMES) + 1 and set(by_label) == set(NAMES) | {"bombed"}
    assert by_label[QUOTED]["support"] == 3 and by_label[QUOTED]["type"] == "person"
    assert by_label[QUOTED]["born in"] == "London" and by_label[QUOTED]["attr_type"] == "mathematician"
    assert by_label[QUOTED]["note"] == ";".join(sorted([BACKSLASH, NEWLINE, SEPARATOR]))
    assert by_label["bombed"]["kind"] == "event" and by_label["bombed"]["type"] == "attack\nevent"
    assert all(n["kind"] == "entity" for n in nodes if n["label"] != "bombed")
    edge = next(e for e in edges if e["source"] == by_label[QUOTED]["id"])
    assert (edge["label"], edge["kind"], edge["support"], edge["target"]) == (
        RELATION, "relation", 2, by_label[CHINESE]["id"])
    assert edge["documents"] == sorted(["urn:kgc:doc:doc%20%221%22%20%5C%20%C3%BCn%C3%AF", "urn:kgc:doc:doc%203"])
    assert Counter(e["kind"] for e in edges) == {"relation": 3, "role": 4}


# -- RDF ------------------------------------------------------------------------------------
@pytest.mark.parametrize("exporter, fmt", [(TriG, "trig"), (NQuads, "nquads"), (JsonLd, "json-ld")])
def test_named_graph_formats_read_back_by_rdflib(graph, tmp_path, exporter, fmt):
    out = tmp_path / f"kg.{exporter.name}"
    assert exporter().export(graph, out) == str(out)
    assert _dataset_quads(out, fmt) == _store_quads(graph)


def test_turtle_is_the_union_graph(graph, tmp_path):
    out = tmp_path / "kg.ttl"
    Turtle().export(graph, out)
    assert out.read_text(encoding="utf-8").startswith("@prefix")
    parsed = rdflib.Graph().parse(out, format="turtle")
    expected = rdflib.Graph()
    for s, p, o, _ in _store_quads(graph):
        expected.add((s, p, o))
    assert isomorphic(parsed, expected)
    assert set(parsed) == set(expected)


# -- property graphs ------------------------------------------------------------------------
def test_graphml_read_back_by_networkx(graph, pg, tmp_path):
    out = tmp_path / "kg.graphml"
    GraphMl().export(graph, out)
    read = networkx.read_graphml(out)
    nodes, edges = pg
    assert dict(read.nodes(data=True)) == {n["id"]: {k: v for k, v in n.items() if k != "id"} for n in nodes}
    read_edges = [(u, v, {k: x for k, x in data.items() if k != "id"}) for u, v, data in read.edges(data=True)]
    assert sorted(map(repr, read_edges)) == sorted(
        repr((e["source"], e["target"], {k: _flat(e[k]) for k in EDGE_KEYS[2:]})) for e in edges)


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_csv_read_back_by_the_csv_module(graph, pg, tmp_path):
    assert Csv().export(graph, tmp_path / "csv") == str(tmp_path / "csv")
    nodes, edges = pg
    rows = _read_csv(tmp_path / "csv" / "nodes.csv")
    assert rows[0][:5] == ["id", "label", "type", "kind", "support"]
    assert sorted(rows[0][5:]) == rows[0][5:] == ["attr_type", "born in", "note"]
    assert rows[1:] == [[str(n.get(k, "")) for k in rows[0]] for n in nodes]
    edge_rows = _read_csv(tmp_path / "csv" / "edges.csv")
    assert edge_rows[0] == list(EDGE_KEYS)
    assert edge_rows[1:] == [[str(_flat(e[k])) for k in EDGE_KEYS] for e in edges]


def test_neo4j_csv_read_back_by_the_csv_module(graph, pg, tmp_path):
    folder = tmp_path / "neo4j"
    Neo4jCsv().export(graph, folder)
    nodes, edges = pg
    rows = _read_csv(folder / "nodes.csv")
    assert rows[0] == ["id:ID", ":LABEL", "label:string", "type:string", "kind:string", "support:int",
                       "attr_type:string", "born in:string", "note:string"]
    keys = [h.rpartition(":")[0] for h in rows[0][2:]]
    assert rows[1:] == [[n["id"], n["kind"].title()] + [str(n.get(k, "")) for k in keys] for n in nodes]
    rels = _read_csv(folder / "relationships.csv")
    assert rels[0] == [":START_ID", ":END_ID", ":TYPE", "kind:string", "support:int", "documents:string[]"]
    assert rels[1:] == [[e["source"], e["target"], e["label"], e["kind"], str(e["support"]), ";".join(e["documents"])]
                        for e in edges]
    assert "neo4j-admin database import full" in (folder / "README").read_text(encoding="utf-8")


# -- Cypher: a reader for the script's statement forms --------------------------------------
_STRING = r'"(?:[^"\\]|\\.)*"'
_NAME = r"`(?:[^`]|``)*`"
_NODE = re.compile(rf"MERGE \(n:({_NAME}) \{{id: ({_STRING})\}}\) SET n \+= (\{{.*\}});", re.S)
_EDGE = re.compile(rf"MATCH \(a:({_NAME}) \{{id: ({_STRING})\}}\), \(b:({_NAME}) \{{id: ({_STRING})\}}\) "
                   rf"MERGE \(a\)-\[r:({_NAME})\]->\(b\) SET r \+= (\{{.*\}});", re.S)
_TOKEN = re.compile(rf"\s*({_STRING}|{_NAME}|-?\d+|[\[\]{{}},:])", re.S)
_UNESCAPE = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _unescape(literal: str) -> str:
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 5 else _UNESCAPE[m[1]],
                  literal[1:-1], flags=re.S)


def _name(literal: str) -> str:
    """A backquoted name as Cypher reads it: ``\\uXXXX`` escapes first, then doubled backquotes."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), literal[1:-1]).replace("``", "`")


def _value(tokens: list[str]):
    token = tokens.pop(0)
    if token == "{":
        out = {}
        while tokens[0] != "}":
            key = _name(tokens.pop(0))
            assert tokens.pop(0) == ":"
            out[key] = _value(tokens)
            if tokens[0] == ",":
                tokens.pop(0)
        tokens.pop(0)
        return out
    if token == "[":
        items = []
        while tokens[0] != "]":
            items.append(_value(tokens))
            if tokens[0] == ",":
                tokens.pop(0)
        tokens.pop(0)
        return items
    return _unescape(token) if token.startswith('"') else int(token)


def _map(text: str) -> dict:
    tokens, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        assert match, text[at:at + 40]
        tokens.append(match[1])
        at = match.end()
    value = _value(tokens)
    assert not tokens
    return value


def read_cypher(script: str) -> tuple[list[dict], list[dict]]:
    nodes, edges = [], []
    for line in script.split("\n")[:-1]:
        if line.startswith("CREATE CONSTRAINT"):
            continue
        if match := _NODE.fullmatch(line):
            nodes.append({"id": _unescape(match[2]), **_map(match[3]), "_label": _name(match[1])})
        else:
            match = _EDGE.fullmatch(line)
            assert match, line[:200]
            edges.append({"source": _unescape(match[2]), "target": _unescape(match[4]), "label": _name(match[5]),
                          **_map(match[6]), "_labels": (_name(match[1]), _name(match[3]))})
    return nodes, edges


def test_cypher_read_back(graph, pg, tmp_path):
    out = tmp_path / "kg.cypher"
    Cypher().export(graph, out)
    script = out.read_text(encoding="utf-8")
    assert not set(script) & {"\r", "\t", "\u2028", "\u200f"}  # written escaped, one statement a line
    nodes, edges = read_cypher(script)
    expected_nodes, expected_edges = pg
    kinds = {n["id"]: n["kind"].title() for n in expected_nodes}
    assert nodes == [{**n, "_label": kinds[n["id"]]} for n in expected_nodes]
    assert sorted(map(repr, edges)) == sorted(
        repr({**e, "_labels": (kinds[e["source"]], kinds[e["target"]])}) for e in expected_edges)
    assert script.count("CREATE CONSTRAINT") == 2


def test_cypher_string_escapes():
    from kgc_graph.cypher import cypher_name, cypher_string

    assert cypher_string('a"b\\c\nd\te\r\u2028é🚀') == '"a\\"b\\\\c\\nd\\te\\r\\u2028é🚀"'
    assert cypher_name("a`b") == "`a``b`"


# -- the command ----------------------------------------------------------------------------
def _kgc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgcore.cli", "graph", "export", *args], cwd=cwd,
                          capture_output=True, timeout=300)


def test_export_command(store, graph, tmp_path):
    done = _kgc(str(store), "-f", "ttl", "-o", "out.ttl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert "out.ttl" in done.stderr.decode()
    assert set(rdflib.Graph().parse(tmp_path / "out.ttl", format="turtle")) == {q[:3] for q in _store_quads(graph)}
    done = _kgc(str(store), "-f", "csv", "-o", "csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert len(_read_csv(tmp_path / "csv" / "nodes.csv")) == len(property_graph(graph.store.quads())[0]) + 1
    done = _kgc(str(store), "-f", "nq", cwd=tmp_path)  # standard output
    assert done.returncode == 0, done.stderr.decode()
    dataset = rdflib.Dataset().parse(data=done.stdout, format="nquads")
    assert {(s, p, o, getattr(g, "identifier", g)) for s, p, o, g in dataset.quads()} == _store_quads(graph)


def test_export_command_errors(store, tmp_path):
    done = _kgc(str(store), "-f", "pdf", "-o", "out.pdf", cwd=tmp_path)
    assert done.returncode != 0
    assert "unknown exporter 'pdf'" in done.stderr.decode() and "graphml" in done.stderr.decode()
    assert not (tmp_path / "out.pdf").exists()
    done = _kgc(str(store), "-f", "csv", cwd=tmp_path)
    assert done.returncode != 0 and "folder" in done.stderr.decode()
