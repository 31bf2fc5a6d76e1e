"""The ``sparql`` store against a real Oxigraph server, and the ``neo4j`` store's Cypher (live with NEO4J_URI)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("pyoxigraph")

from kgc_graph.graph import Graph  # noqa: E402
from kgc_graph.model import Document, Provenance, Result, document_iri, entity_iri  # noqa: E402
from kgc_graph.cypher import cypher_name  # noqa: E402
from kgc_graph.neo4j_store import Neo4jStore, node_properties, write_statements  # noqa: E402
from kgc_graph.property_graph import property_graph  # noqa: E402
from kgc_graph.sparql_store import SparqlStore  # noqa: E402
from kgcore import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OXIGRAPH = Path(sys.executable).parent / "oxigraph"
PROV = Provenance("openai", "gpt-test", "run-1", "2025-01-02T03:04:05Z")
#: A name with quotes, backslashes, a newline, an escape-like text, emoji, right-to-left text, SPARQL/IRI delimiters.
ODD = 'Q "quoted" \\ back\nslash \\u0022 🚀 שלום עולם } > <x> ```'


def _result(task: str, answer: dict, shape: str | None, **kw) -> Result:
    return Result(task, answer, shape, provenance=PROV, **kw)


def documents() -> list[Document]:
    """Documents of every graph shape; two share entities, one has an odd name everywhere."""
    text1 = "Ada Lovelace worked with Charles Babbage in London."
    text2 = "Ada Lovelace met Charles Babbage. Babbage designed the Analytical Engine."
    text3 = f"The name {ODD} is odd, and Ada Lovelace was born in 1815."
    return [
        Document("doc-1", text1, {
            "NER": _result("NER", {"person": ["Ada Lovelace", "Charles Babbage"], "location": ["London"]}, "mentions"),
            "RE": _result("RE", {"works with": [{"head": "Ada Lovelace", "tail": "Charles Babbage"}]}, "relations",
                          types={"works with": ("person", "person")})}),
        Document("doc-2", text2, {
            "EE": _result("EE", {"meeting": [{"trigger": "met", "arguments": {"participant": ["Ada Lovelace",
                                                                                               "Charles Babbage"]}}]},
                          "events"),
            "SPO": _result("SPO", {}, None, triples=(("Babbage", "designed", "Analytical Engine"),))}),
        Document(f"doc {ODD}", text3, {
            "KG": _result("KG", {"person": {"Ada Lovelace": {"born": "1815"}, ODD: {ODD: ODD}}}, "attributes"),
            "RE": _result("RE", {ODD: [{"head": ODD, "tail": "Ada Lovelace"}]}, "relations")}),
    ]


# -- an Oxigraph server ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, content_type: str, body: str) -> None:
    request = urllib.request.Request(url, body.encode(), {"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


@pytest.fixture(scope="module")
def oxigraph_server(tmp_path_factory):
    """A real ``oxigraph serve`` on a free loopback port; its base URL. Stopped after the module."""
    if not OXIGRAPH.is_file():
        pytest.skip(f"no oxigraph server CLI at {OXIGRAPH} (pip install oxigraph)")
    port = _free_port()
    log = tmp_path_factory.mktemp("oxigraph") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(OXIGRAPH), "serve", "--location", str(log.parent / "db"),
                                    "--bind", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _post(f"{base}/query", "application/sparql-query", "ASK {}")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"oxigraph serve did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def endpoint(oxigraph_server) -> str:
    """The server's query endpoint, emptied."""
    _post(f"{oxigraph_server}/update", "application/sparql-update", "DROP SILENT ALL")
    return f"{oxigraph_server}/query"


@pytest.fixture
def pair(endpoint, tmp_path):
    """The same documents in the SPARQL store and in an embedded store."""
    docs = documents()
    with Graph.open(endpoint) as remote, Graph.open(str(tmp_path / "kg")) as local:
        assert remote.add(docs).added == local.add(docs).added == len(docs)
        yield remote, local


# -- the sparql store -----------------------------------------------------------------------
def test_sparql_store_answers_like_the_embedded_store(pair):
    remote, local = pair
    assert isinstance(remote.store, SparqlStore)
    assert remote.stats() == local.stats()
    assert remote.stats()["documents"] == 3 and remote.stats()["relations"] == 3
    for name in ("Ada Lovelace", "Charles Babbage", "Analytical Engine", ODD, "nobody"):
        assert remote.find(name) == local.find(name)
    for iri in remote.find("Ada Lovelace") + remote.find("Babbage") + remote.find(ODD):
        assert remote.entity(iri) == local.entity(iri)
    query = "SELECT ?s ?p ?o WHERE { ?p a kgc:Relation . ?s ?p ?o } ORDER BY ?s ?p ?o"
    assert remote.rows(query) == local.rows(query)
    assert remote.check() == local.check() == []
    assert {str(q) for q in remote.store.quads()} == {str(q) for q in local.store.quads()}
    assert remote.search("ada") == local.search("ada")


def test_sparql_store_round_trips_odd_text(pair):
    remote, local = pair
    [iri] = remote.find(ODD)
    assert iri == entity_iri(ODD, "person")
    view = remote.entity(iri)
    assert view["label"] == ODD
    assert {f["predicate"] for f in view["facts"]} == {ODD}
    assert {f["value"] for f in view["facts"]} == {ODD, entity_iri("Ada Lovelace", "person")}
    doc = document_iri(f"doc {ODD}")
    assert [r for r in remote.store.results(doc)] == local.store.results(doc)
    assert {str(q) for q in remote.store.graph_quads(doc)} == {str(q) for q in documents()[2].quads()}
    assert remote.rows(f"SELECT ?t WHERE {{ <{doc}> kgc:text ?t }}") == [{"t": documents()[2].text}]


def test_sparql_store_query_forms(pair):
    from pyoxigraph import QueryBoolean, QueryTriples

    remote, _ = pair
    assert isinstance(remote.query("ASK { ?e a kgc:Entity }"), QueryBoolean)
    assert bool(remote.query("ASK { ?e a kgc:Entity }"))
    triples = remote.query("CONSTRUCT { ?e rdfs:label ?l } WHERE { ?e a kgc:Entity ; rdfs:label ?l }")
    assert isinstance(triples, QueryTriples)
    assert ODD in {t.object.value for t in triples}


def test_sparql_store_readding_changes_nothing(pair):
    remote, _ = pair
    before = {str(q) for q in remote.store.quads()}
    stats = remote.add(documents())
    assert (stats.added, stats.replaced, stats.unchanged, stats.quads) == (0, 0, 3, 0)
    assert {str(q) for q in remote.store.quads()} == before


def test_sparql_store_replace_and_delete(pair):
    remote, local = pair
    new = Document("doc-1", documents()[0].text, {"NER": _result("NER", {"city": ["London"]}, "mentions")})
    for graph in (remote, local):
        stats = graph.add([new])
        assert (stats.added, stats.replaced) == (0, 1)
    assert remote.find("London") == local.find("London") == [entity_iri("London", "city")]
    assert remote.store.results(new.iri) == local.store.results(new.iri)
    assert len(remote.store.results(new.iri)) == 2  # NER replaced, RE kept
    assert remote.stats() == local.stats()
    assert remote.check() == []
    assert remote.delete(["doc-1", "no such doc"]) == local.delete(["doc-1", "no such doc"]) == 1
    assert remote.store.graph_quads(new.iri) == []
    assert remote.find("London") == [] and remote.stats() == local.stats()
    assert remote.stats()["documents"] == 2
    assert remote.check() == []


def test_sparql_store_replace_is_one_update_request(endpoint, monkeypatch):
    store = SparqlStore(endpoint)
    sent = []
    post = store._post

    def spy(url, content_type, accept, body):
        sent.append((url, content_type))
        return post(url, content_type, accept, body)

    monkeypatch.setattr(store, "_post", spy)
    docs = documents()
    store.replace({d.iri: d.ntriples() for d in docs})
    assert sent == [(endpoint.replace("/query", "/update"), "application/sparql-update")]
    assert set(store.digests([d.iri for d in docs] + ["urn:kgc:doc:none"])) == {d.iri for d in docs}


def test_sparql_syntax_error_is_one_clear_line(endpoint):
    with Graph.open(endpoint) as graph:
        graph.add(documents()[:1])
        with pytest.raises(InputError) as error:
            graph.rows("SELECT ?x WHERE {\n  ?x ?y }")
        message = str(error.value)
        assert message.startswith("SPARQL syntax error: ") and "\n" not in message
        assert "2:" in message  # the line of the query as written, not counting the prefixes sent before it
        with pytest.raises(InputError, match="^SPARQL syntax error: "):
            graph.store.update("INSERT DATA { <urn:a> <urn:b> }")


def test_sparql_store_read_only_refuses_writes(endpoint):
    with Graph.open(endpoint) as graph:
        graph.add(documents()[:1])
    with Graph.open(endpoint, read_only=True) as graph:
        assert graph.stats()["documents"] == 1
        for write in (lambda: graph.add(documents()[1:]), lambda: graph.delete(["doc-1"]),
                      lambda: graph.store.update("CLEAR ALL")):
            with pytest.raises(InputError, match="read-only"):
                write()
        assert graph.stats()["documents"] == 1


def test_sparql_store_update_url_rule():
    assert SparqlStore("http://h:7878/query").update_url == "http://h:7878/update"
    assert SparqlStore("https://h/ds/query?x=1").update_url == "https://h/ds/update?x=1"
    assert SparqlStore("http://h/sparql").update_url == "http://h/sparql"
    assert SparqlStore("http://h/query", update_url="http://h/statements").update_url == "http://h/statements"
    with pytest.raises(InputError, match="unknown option"):
        SparqlStore("http://h/query", colour="red")


def test_sparql_store_unreachable_and_silent_endpoints():
    url = f"http://127.0.0.1:{_free_port()}/query"
    with pytest.raises(InputError, match=f"^cannot reach the SPARQL endpoint {url}: .*refused"):
        SparqlStore(url).query("ASK {}")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/query"
        start = time.monotonic()
        with pytest.raises(InputError, match="did not answer within 0.5 s"):
            SparqlStore(url, timeout=0.5).digests(["urn:kgc:doc:a"])
        assert time.monotonic() - start < 5


def test_sparql_store_needs_the_union_default_graph(endpoint):
    with Graph.open(endpoint) as graph:
        graph.add(documents()[:1])
    with Graph.open(endpoint, "sparql", union_default_graph=False) as graph:
        with pytest.raises(InputError, match="not the union of its named graphs"):
            graph.stats()


def test_cli_graph_build_into_a_sparql_endpoint(endpoint, tmp_path):
    lines = [{"id": "cli-1", "task": "NER", "text": "Grace Hopper worked at Harvard.",
              "result": {"person": ["Grace Hopper"], "organization": ["Harvard"]}, "triples": [],
              "provenance": {"backend": "openai", "model": "m", "run": "r1", "time": "2025-01-01T00:00:00Z"}},
             {"id": "cli-1", "task": "RE", "text": "Grace Hopper worked at Harvard.",
              "result": {"work for": [{"head": "Grace Hopper", "tail": "Harvard"}]},
              "triples": [["Grace Hopper", "work for", "Harvard"]], "provenance": {"backend": "openai"}}]
    path = tmp_path / "extract.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    def kgc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kgcore.cli", "graph", *args], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)

    done = kgc("build", endpoint, str(path), "-q")
    assert done.returncode == 0, done.stderr
    assert "1 added, 0 replaced" in done.stderr
    done = kgc("stats", endpoint, "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert (counts["documents"], counts["entities"], counts["relations"]) == (1, 2, 1)
    assert "0 added, 0 replaced, 1 unchanged" in kgc("build", endpoint, str(path), "-q").stderr
    done = kgc("query", endpoint, "SELEC ?x")
    assert done.returncode != 0 and "SPARQL syntax error" in done.stderr


# -- the neo4j store, without a server --------------------------------------------------------
def test_cypher_name_escaping():
    assert cypher_name("works with") == "`works with`"
    assert cypher_name("a`b") == "`a``b`"
    assert cypher_name("`) DETACH DELETE (n") == "```) DETACH DELETE (n`"
    assert cypher_name("a\\u0060b") == "`a\\u005Cu0060b`"  # Cypher reads \uXXXX escapes before names
    assert cypher_name("") == "`_`"
    for name in ("x", "a`b", "``", "`", "a\\", "\\u0060) MATCH (n) DETACH DELETE n //", ODD):
        inner = cypher_name(name)[1:-1]
        assert "\\" not in inner.replace("\\u005C", "")  # no backslash but the escaped ones
        assert "`" not in inner.replace("``", "")  # no lone backquote


def test_neo4j_write_statements_keep_values_out_of_the_query_text():
    docs = documents()
    statements = write_statements({d.iri: d.ntriples() for d in docs})
    texts = [cypher for cypher, _ in statements]
    types = [ODD, "works with", "designed", "participant"]  # relation and role names: escaped types
    values = [ODD, "Ada Lovelace", "London", "1815", "met", "doc-1", docs[0].text]
    for text in texts:
        assert text.startswith("UNWIND $rows AS row ")
        for type_ in types:
            text = text.replace(f"[r:{cypher_name(type_)}]", "[r:TYPE]")
        assert not any(value in text for value in values), text
        assert "urn:kgc:" not in text
    for type_ in types:
        assert sum(f"[r:{cypher_name(type_)}]" in text for text in texts) == 1
    assert all(params["rows"] for _, params in statements)
    [document] = [params["rows"] for cypher, params in statements if "MERGE (d:Document" in cypher]
    assert [d["label"] for d in document] == [d.id for d in docs]
    assert document[2]["text"] == docs[2].text and document[2]["results"] == sorted(
        r.json for r in docs[2].results.values())
    [odd] = [params["rows"] for cypher, params in statements if cypher_name(ODD) in cypher]
    assert odd == [{"source": entity_iri(ODD, "person"), "target": entity_iri("Ada Lovelace", "person"),
                    "kind": "relation", "documents": [docs[2].iri]}]
    mentions = [r for cypher, params in statements if "Mention" in cypher for r in params["rows"]]
    assert {m["properties"]["label"] for m in mentions} >= {ODD, "Ada Lovelace", "met"}
    assert all(docs_text[m["properties"]["start"]:m["properties"]["end"]] == m["properties"]["label"]
               for m in mentions for docs_text in [next(d.text for d in docs if d.iri == m["document"])])


def test_neo4j_edges_of_a_batch_carry_every_document():
    docs = documents()
    again = Document("doc-4", "Ada Lovelace worked with Charles Babbage.", {"RE": docs[0].results["RE"]})
    statements = write_statements({d.iri: d.ntriples() for d in (docs[0], again)})
    [rows] = [params["rows"] for cypher, params in statements if cypher_name("works with") in cypher]
    assert rows == [{"source": entity_iri("Ada Lovelace", "person"), "target": entity_iri("Charles Babbage", "person"),
                     "kind": "relation", "documents": [docs[0].iri, again.iri]}]


def test_neo4j_node_properties_are_the_property_graph_nodes():
    docs = documents()
    quads = [q for d in docs for q in d.quads()]
    expected = {n["id"]: n for n in property_graph(quads)[0]}
    contains = [r for cypher, params in write_statements({d.iri: d.ntriples() for d in docs})
                if "CONTAINS" in cypher for r in params["rows"]]
    by_node: dict = {}
    for row in contains:
        by_node.setdefault(row["id"], []).append(row["statements"])
    assert set(by_node) == set(expected)
    for iri, statements in by_node.items():
        assert node_properties(statements) == expected[iri]
    ada = node_properties(by_node[entity_iri("Ada Lovelace", "person")])
    assert (ada["support"], ada["born"], ada["label"]) == (2, "1815", "Ada Lovelace")  # doc-2 does not type her
    assert node_properties([]) is None
    unnamed = Document("doc-5", "Ada Lovelace", {"KG": _result("KG", {"person": {"Ada Lovelace": {"": "x"}}},
                                                                 "attributes")})
    [row] = [r for cypher, params in write_statements({unnamed.iri: unnamed.ntriples()})
             if "CONTAINS" in cypher for r in params["rows"]]
    assert node_properties([row["statements"]])["_"] == "x"  # Neo4j takes no empty property key


def test_neo4j_store_locations_and_errors(monkeypatch):
    for location in ("neo4j://h:7687", "neo4j+s://h", "bolt://h", "bolt+s://h"):
        assert Neo4jStore.accepts(location) and not SparqlStore.accepts(location)
    assert not Neo4jStore.accepts("http://h/query") and not Neo4jStore.accepts("kg")
    port = _free_port()
    with pytest.raises(InputError, match=f"^cannot reach Neo4j at bolt://127.0.0.1:{port}"):
        Neo4jStore(f"bolt://127.0.0.1:{port}")
    with pytest.raises(InputError, match="unknown option"):
        Neo4jStore("bolt://127.0.0.1:1", colour="red")
    monkeypatch.setitem(sys.modules, "neo4j", None)
    with pytest.raises(InputError, match=r"pip install 'kgcore\[neo4j\]'"):
        Neo4jStore("bolt://127.0.0.1:1")


# -- the neo4j store, live --------------------------------------------------------------------
live = pytest.mark.skipif(not os.environ.get("NEO4J_URI"), reason="set NEO4J_URI (and NEO4J_USER, NEO4J_PASSWORD) "
                          "to run the Neo4j tests against a server")


def _tagged(value, names: re.Pattern, tag: str):
    """``value`` (text, or JSON data) with every one of ``names`` followed by `` tag``."""
    if isinstance(value, str):
        return names.sub(lambda m: f"{m.group()} {tag}", value)
    if isinstance(value, list):
        return [_tagged(v, names, tag) for v in value]
    if isinstance(value, dict):
        return {_tagged(k, names, tag): _tagged(v, names, tag) for k, v in value.items()}
    return value


@pytest.fixture
def neo4j_graph():
    """A Neo4j store at NEO4J_URI, and the test documents with ids and names of this run only (removed after)."""
    tag = uuid.uuid4().hex[:8]
    names = re.compile("|".join(map(re.escape, [ODD, "Charles Babbage", "Analytical Engine", "Ada Lovelace",
                                                 "Babbage", "London"])))
    docs = [Document(f"{d.id} {tag}", _tagged(d.text, names, tag),
                     {t: Result.from_json(json.dumps(_tagged(json.loads(r.json), names, tag)))
                      for t, r in d.results.items()}) for d in documents()]
    graph = Graph.open(os.environ["NEO4J_URI"], database=os.environ.get("NEO4J_DATABASE"))
    try:
        yield graph, docs, tag
    finally:
        graph.store.remove([d.iri for d in docs])
        graph.close()


@pytest.mark.neo4j
@live
def test_live_neo4j_build_replace_remove(neo4j_graph):
    graph, docs, tag = neo4j_graph
    store = graph.store
    assert graph.add(docs).added == 3 and graph.add(docs).unchanged == 3
    assert store.digests([d.iri for d in docs]) == {d.iri: d.digest for d in docs}
    for doc in docs:
        assert {str(q) for q in store.graph_quads(doc.iri)} == {str(q) for q in doc.quads()}
    assert {str(q) for q in store.quads()} >= {str(q) for d in docs for q in d.quads()}
    nodes = {n["id"]: n for n in property_graph(q for d in docs for q in d.quads())[0]}
    ada, odd = entity_iri(f"Ada Lovelace {tag}", "person"), entity_iri(f"{ODD} {tag}", "person")

    def node(iri):
        rows = store._read("MATCH (n {id: $id}) RETURN properties(n) AS p", id=iri)
        return rows[0]["p"] if rows else None

    assert node(ada) == nodes[ada] and node(ada)["support"] == 2
    assert node(odd) == nodes[odd] and node(odd)["label"] == f"{ODD} {tag}"
    edges = store._read("MATCH (a {id: $id})-[r]->(b) RETURN type(r) AS type, r.documents AS documents", id=ada)
    assert [(r["type"], r["documents"]) for r in edges] == [("works with", [docs[0].iri])]
    edges = store._read("MATCH (a {id: $id})-[r]->() RETURN type(r) AS type", id=odd)
    assert [r["type"] for r in edges] == [f"{ODD} {tag}"]  # the escaped name reaches Neo4j as it was
    new = Document(docs[0].id, docs[0].text, {"NER": _result("NER", {"city": [f"London {tag}"]}, "mentions")})
    assert graph.add([new]).replaced == 1
    assert node(entity_iri(f"London {tag}", "location")) is None
    assert node(entity_iri(f"London {tag}", "city"))["support"] == 1
    assert node(ada)["support"] == 2  # still in doc-1 through its kept RE result
    store.remove([d.iri for d in docs])
    assert store.digests([d.iri for d in docs]) == {}
    assert node(ada) is None and node(odd) is None and node(entity_iri(f"London {tag}", "city")) is None


@pytest.mark.neo4j
@live
def test_live_neo4j_refuses_sparql_and_read_only_writes(neo4j_graph):
    graph, docs, _ = neo4j_graph
    with pytest.raises(InputError, match="Cypher, not SPARQL"):
        graph.stats()
    reader = Graph.open(os.environ["NEO4J_URI"], read_only=True, database=os.environ.get("NEO4J_DATABASE"))
    with reader, pytest.raises(InputError, match="read-only"):
        reader.add(docs[:1])
