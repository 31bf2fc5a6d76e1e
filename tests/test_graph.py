"""The knowledge graph: the model (ids, types, spans, provenance), incremental and idempotent ingest,
deletion, the commands, and faults (bad files, a second writer, kill -9, SPARQL errors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DEEPKE

import kgcore
from kgcore import InputError

pytest.importorskip("pyoxigraph", reason="the graph extra: pip install 'kgcore[graph]'")

from kgc_graph import Graph, Sources  # noqa: E402
from kgc_graph.model import UNTYPED, Document, Provenance, Result, entity_iri  # noqa: E402

RUN = Provenance("llamacpp", "smollm2", "run-1", "2026-12-01T10:00:00Z")
TEXT = "Ada Lovelace worked with Charles Babbage in London. Ada wrote notes in London."


def ner(answer: dict, run: Provenance = RUN) -> Result:
    return Result("NER", answer, "mentions", provenance=run)


def re_(answer: dict) -> Result:
    return Result("RE", answer, "relations", provenance=RUN)


@pytest.fixture
def graph(tmp_path):
    with Graph.open(str(tmp_path / "kg")) as kg:
        yield kg


def test_entities_are_type_scoped_and_deterministic():
    assert entity_iri("European Union", "organization") == entity_iri(" european  UNION", "organization")
    assert entity_iri("EU", "organization") != entity_iri("EU", "location")
    assert entity_iri("ＡＢＣ", "x") == entity_iri("ABC", "x")  # full-width forms normalize (NFKC)


def test_statements_with_types_spans_and_provenance(graph):
    doc = Document("d1", TEXT, {"NER": ner({"person": ["Ada Lovelace", "Charles Babbage"], "location": ["London"]}),
                                "RE": re_({"work with": [{"head": "Ada Lovelace", "tail": "Charles Babbage"}],
                                           "live in": [{"head": "Ada", "tail": "Paris"}]})})
    stats = graph.add([doc])
    assert (stats.added, stats.quads) == (1, len(doc.quads()))
    # RE arguments take the types NER gave their names; a name nobody typed gets the documented fallback.
    rows = graph.rows("SELECT ?l ?t WHERE { ?e kgc:entityType ?t ; rdfs:label ?l } ORDER BY ?l")
    assert rows == [{"l": "Ada", "t": UNTYPED}, {"l": "Ada Lovelace", "t": "person"},
                    {"l": "Charles Babbage", "t": "person"}, {"l": "London", "t": "location"},
                    {"l": "Paris", "t": UNTYPED}]
    view = graph.entity(entity_iri("London", "location"))
    spans = [(s["start"], s["end"]) for s in view["mentions"][0]["spans"]]
    assert spans == [(44, 50), (71, 77)] and all(TEXT[s:e] == "London" for s, e in spans)
    # "Ada" is found where it stands alone, not inside "Ada Lovelace"; "Paris" is in no span (not in the text).
    ada = graph.entity(entity_iri("Ada", UNTYPED))
    assert [(s["start"], s["end"]) for s in ada["mentions"][0]["spans"]] == [(52, 55)]
    assert graph.entity(entity_iri("Paris", UNTYPED))["mentions"][0]["spans"] == []
    (fact,) = graph.entity(entity_iri("Ada Lovelace", "person"))["facts"]
    assert (fact["direction"], fact["predicate"], fact["label"], fact["support"]) == ("out", "work with",
                                                                                       "Charles Babbage", 1)
    assert fact["sources"][0]["sentence"]["text"] == "Ada Lovelace worked with Charles Babbage in London."
    run = graph.rows("SELECT ?b ?m ?t WHERE { GRAPH ?g { ?g prov:wasGeneratedBy ?r . ?r kgc:backend ?b ; "
                     "kgc:model ?m ; prov:startedAtTime ?t } }")
    assert run == [{"b": "llamacpp", "m": "smollm2", "t": "2026-12-01T10:00:00Z"}]


def test_support_counts_documents(graph):
    graph.add(Document(f"d{i}", f"Paris is big {i}.", {"NER": ner({"location": ["Paris"]})}) for i in range(3))
    view = graph.entity(entity_iri("Paris", "location"))
    assert view["documents"] == 3 and graph.stats()["entities"] == 1


def test_adding_again_changes_nothing_and_a_task_result_replaces_its_own(graph, tmp_path):
    first = Document("d1", TEXT, {"NER": ner({"person": ["Ada Lovelace"]})})
    graph.add([first])
    before = sorted(str(q) for q in graph.store.quads())
    again = graph.add([Document("d1", TEXT, {"NER": ner({"person": ["Ada Lovelace"]})})])
    assert (again.unchanged, again.quads) == (1, 0)
    assert sorted(str(q) for q in graph.store.quads()) == before
    # Another task adds to the document; a new result of the same task replaces the old one.
    graph.add([Document("d1", TEXT, {"RE": re_({"work with": [{"head": "Ada Lovelace", "tail": "Charles Babbage"}]})})])
    graph.add([Document("d1", TEXT, {"NER": ner({"location": ["London"]})})])
    labels = {r["l"] for r in graph.rows("SELECT ?l WHERE { ?e a kgc:Entity ; rdfs:label ?l }")}
    assert labels == {"Ada Lovelace", "Charles Babbage", "London"}  # NER's person answer is gone; RE still there
    assert graph.rows("SELECT ?t WHERE { ?e rdfs:label 'Ada Lovelace' ; kgc:entityType ?t }") == [{"t": UNTYPED}]
    assert graph.check() == []


def test_delete_removes_statements_and_unsupported_entities(graph):
    graph.add([Document("d1", "Paris and Rome.", {"NER": ner({"location": ["Paris", "Rome"]})}),
               Document("d2", "Paris again.", {"NER": ner({"location": ["Paris"]})})])
    assert graph.delete(["d1", "missing"]) == 1
    assert graph.find("Rome") == [] and graph.find("Paris") == [entity_iri("Paris", "location")]
    assert graph.entity(entity_iri("Paris", "location"))["documents"] == 1
    assert graph.stats()["documents"] == 1


def test_events_and_attributes(graph):
    doc = Document("e1", "Aspirin caused a rash in the patient. Marie Curie was born in Warsaw.", {
        "EE": Result("EE", {"adverse event": [{"trigger": "caused", "arguments": {
            "treatment": "Aspirin", "effect": ["rash"], "subject": "NAN"}}]}, "events", provenance=RUN),
        "KG": Result("KG", {"person": {"Marie Curie": {"birthplace": "Warsaw", "spouse": "无"}}}, "attributes",
                     provenance=RUN)})
    graph.add([doc])
    events = graph.rows("SELECT ?type ?trigger ?role ?arg WHERE { ?e a kgc:Event ; kgc:eventType ?type ; "
                        "kgc:trigger ?trigger ; ?p ?a . ?p a kgc:Role ; rdfs:label ?role . ?a rdfs:label ?arg } "
                        "ORDER BY ?role")
    assert events == [{"type": "adverse event", "trigger": "caused", "role": "effect", "arg": "rash"},
                      {"type": "adverse event", "trigger": "caused", "role": "treatment", "arg": "Aspirin"}]
    assert graph.rows("SELECT ?v WHERE { ?e rdfs:label 'Marie Curie' ; ?p ?v . ?p a kgc:Attribute }") == [
        {"v": "Warsaw"}]  # the reference's empty value (无) adds nothing
    curie = graph.entity(entity_iri("Marie Curie", "person"))
    [birthplace] = curie["facts"]
    assert birthplace | {"sources": None} == {"direction": "out", "predicate": "birthplace", "value": "Warsaw",
                                              "label": None, "type": None, "support": 1, "sources": None}
    assert birthplace["sources"][0]["spans"] == [{"start": 38, "end": 49, "text": "Marie Curie"}]
    assert birthplace["sources"][0]["sentence"]["text"] == "Marie Curie was born in Warsaw."
    [caused] = graph.entity(graph.find("Aspirin")[0])["facts"]
    assert (caused["direction"], caused["predicate"], caused["label"], caused["type"]) == (
        "in", "treatment", "caused", "adverse event")
    assert [s["text"] for s in caused["sources"][0]["spans"]] == ["Aspirin", "caused"]


def test_entity_view_keeps_the_best_supported_facts(graph):
    texts = ["Ada met Bob and Cy in Rome.", "Ada met Bob in Rome.", "Ada met Bob."]
    pairs = [["Bob", "Cy"], ["Bob"], ["Bob"]]
    graph.add(Document(f"d{i}", text, {"RE": re_({"met": [{"head": "Ada", "tail": t} for t in met],
                                                  "visited": [{"head": "Ada", "tail": "Rome"}] * ("Rome" in text)})})
              for i, (text, met) in enumerate(zip(texts, pairs)))
    [ada] = graph.find("Ada")
    every = graph.entity(ada, facts=None)
    assert [(f["label"], f["support"]) for f in every["facts"]] == [("Bob", 3), ("Cy", 1), ("Rome", 2)]
    best = graph.entity(ada, sources=1, facts=2)
    assert best["fact_count"] == 3 and [(f["label"], f["support"]) for f in best["facts"]] == [("Bob", 3), ("Rome", 2)]
    assert [len(f["sources"]) for f in best["facts"]] == [1, 1]


def test_subgraph_to_draw(graph):
    graph.add([Document("d1", TEXT, {"NER": ner({"person": ["Ada Lovelace", "Charles Babbage"],
                                                 "location": ["London"]}),
                                     "RE": re_({"work with": [{"head": "Ada Lovelace", "tail": "Charles Babbage"}],
                                                "live in": [{"head": "Ada Lovelace", "tail": "London"}]})}),
               Document("d2", "Ada Lovelace lived in London.", {
                   "NER": ner({"person": ["Ada Lovelace"], "location": ["London"]}),
                   "RE": re_({"live in": [{"head": "Ada Lovelace", "tail": "London"}]})})])
    ada, babbage, london = (entity_iri(n, t) for n, t in [("Ada Lovelace", "person"), ("Charles Babbage", "person"),
                                                         ("London", "location")])
    around = graph.subgraph(babbage)
    assert around["edges"] == [{"source": ada, "target": babbage, "label": "work with", "support": 1}]
    assert {(n["id"], n["label"], n["type"], n["kind"]) for n in around["nodes"]} == {
        (ada, "Ada Lovelace", "person", "entity"), (babbage, "Charles Babbage", "person", "entity")}
    whole = graph.subgraph(limit=1)  # the best supported first
    assert whole["edges"] == [{"source": ada, "target": london, "label": "live in", "support": 2}]
    assert graph.subgraph(ada)["edges"][0]["support"] == 2 and len(graph.subgraph(ada)["edges"]) == 2
    alone = Document("d3", "Grace Hopper.", {"NER": ner({"person": ["Grace Hopper"]})})
    graph.add([alone])
    grace = entity_iri("Grace Hopper", "person")
    assert graph.subgraph(grace) == {"nodes": [{"id": grace, "label": "Grace Hopper", "type": "person",
                                                "kind": "entity"}], "edges": []}


def test_malformed_files_name_file_line_and_field(tmp_path):
    good = {"id": "a", "task": "NER", "text": "Ada.", "result": {"person": ["Ada"]}}
    for line, field in ([{**good, "result": ["Ada"]}, "result"], [{**good, "task": None}, "task"],
                        [{"text": "x"}, None]):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
        with pytest.raises(InputError) as info:
            list(Sources().files([path]))
        assert str(info.value).startswith(f"{path}:2: ")
        assert (f"(field '{field}')" in str(info.value)) if field else "neither a kgc extract line" in str(info.value)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "x", "result": {}\n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"{broken}:1: invalid JSON"):
        list(Sources().files([broken]))


def kgc(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgcore.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _lines(path: Path, docs: list[Document]) -> Path:
    """Documents as ``kgc extract`` lines."""
    rows = [{"id": d.id, "task": t, "text": d.text, "result": r.answer, "triples": [],
             "provenance": {"backend": "b", "model": "m", "run": "r", "time": "2026-12-01T10:00:00Z"}}
            for d in docs for t, r in d.results.items()]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_second_writer_gets_a_clear_error_and_a_reader_still_opens(tmp_path):
    store = tmp_path / "kg"
    with Graph.open(str(store)) as kg:
        kg.add([Document("d1", "Paris.", {"NER": ner({"location": ["Paris"]})})])
        busy = kgc("graph", "build", str(store), str(_lines(tmp_path / "x.jsonl", [
            Document("d2", "Rome.", {"NER": ner({"location": ["Rome"]})})])), "-q", cwd=tmp_path)
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines()[-1] == (f"Error: {store}: the graph store is open for writing in "
                                                         "another process; wait for it to finish, or open it "
                                                         "read-only (queries, show, stats, export do)")
        reader = kgc("graph", "stats", str(store), "--json", cwd=tmp_path)
        assert reader.returncode == 0 and json.loads(reader.stdout)["documents"] == 1


def test_sparql_syntax_error_is_one_line_and_values_stay_values(graph, tmp_path):
    name = 'R"o\\me }> ; DROP ALL ; #\n\u202eمرحبا 😀'
    graph.add([Document("d1", f"x {name} y", {"NER": ner({"location": [name]})})])
    assert graph.find(name) == [entity_iri(name, "location")]
    assert graph.search('"o\\me }>')[0]["label"] == name
    assert graph.stats()["documents"] == 1
    for broken in ("SELEC ?x WHERE { ?x ?y ?z }", "SELECT ?s WHERE { ?s"):  # the second's message is long
        with pytest.raises(InputError, match=r"^SPARQL syntax error: ") as error:
            graph.rows(broken)
        assert "\n" not in str(error.value) and len(str(error.value)) < 350
    graph.close()
    done = kgc("graph", "query", str(tmp_path / "kg"), "SELECT ?x WHERE { ?x ?y }", cwd=tmp_path)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("Error: SPARQL syntax error: ")


BIG = 3000


def test_kill_9_during_a_large_build_leaves_a_consistent_store_and_a_rerun_completes(tmp_path):
    docs = [Document(f"doc-{i}", f"Person {i} lives in City {i % 50}.",
                     {"NER": ner({"person": [f"Person {i}"], "location": [f"City {i % 50}"]})}) for i in range(BIG)]
    lines = _lines(tmp_path / "big.jsonl", docs)
    store = tmp_path / "kg"
    command = [sys.executable, "-m", "kgcore.cli", "graph", "build", str(store), str(lines), "-q", "--batch-size", "100"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not (store / "CURRENT").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # let it write some batches
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with Graph.open(str(store)):  # a writer opens it: a write that never finished is undone
        pass
    with Graph.open(str(store), read_only=True) as kg:
        partial = kg.stats()["documents"]
        assert kg.check() == []  # every document there is whole
    assert partial < BIG, "the kill should land mid-build"
    rerun = kgc("graph", "build", str(store), str(lines), "-q", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{BIG} documents: {BIG - partial} added, 0 replaced, {partial} unchanged" in rerun.stderr
    with Graph.open(str(store), read_only=True) as kg:
        assert kg.stats()["documents"] == BIG and kg.stats()["entities"] == BIG + 50
        assert kg.rows("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?g a kgc:Document } }") == [{"n": BIG}]


def test_build_from_prediction_files(tmp_path):
    test = tmp_path / "test.json"
    kgcore.convert(DEEPKE / "RE" / "sample.json", test, task="RE", schema=DEEPKE / "RE" / "schema.json",
                   options=kgcore.ConvertOptions(split="test"), progress=False)
    records = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
    pred = tmp_path / "pred.json"
    # answer each chunk with its gold relations (the label field), as a model would in the best case
    with pred.open("w", encoding="utf-8") as fh:
        for record in records:
            schema = json.loads(record["instruction"])["schema"]
            gold = json.loads(record["label"])
            answer = {rel: [{"head": g["head"], "tail": g["tail"]} for g in gold if g["relation"] == rel]
                      for rel in schema}
            fh.write(json.dumps({**record, "output": json.dumps(answer, ensure_ascii=False)}, ensure_ascii=False)
                     + "\n")
    done = kgc("graph", "build", str(tmp_path / "kg"), str(pred), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    texts = {json.loads(r["instruction"])["input"] for r in records}
    with Graph.open(str(tmp_path / "kg"), read_only=True) as kg:
        stats = kg.stats()
        gold = {(g["head"], g["relation"], g["tail"]) for r in records for g in json.loads(r["label"])}
        edges = {(r["h"], r["r"], r["t"]) for r in kg.rows(
            "SELECT ?h ?r ?t WHERE { ?s ?p ?o . ?p a kgc:Relation ; rdfs:label ?r . ?s rdfs:label ?h . "
            "?o rdfs:label ?t }")}
    assert stats["documents"] == len(texts) and edges == gold


def test_extract_into_a_graph_with_the_default_model(tmp_path, smollm2_gguf):
    store = tmp_path / "kg"
    done = kgc("extract", "--task", "NER", "--labels", "person,location", "--graph", str(store),
               "Angela Merkel visited Paris.", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["id"] == kgcore.conversion.stable_id("Angela Merkel visited Paris.") and line["task"] == "NER"
    assert line["provenance"]["backend"] == "llamacpp" and line["provenance"]["labels"] == ["person", "location"]
    with Graph.open(str(store), read_only=True) as kg:
        assert kg.find("Paris", "location") and kg.find("Angela Merkel", "person")
        (run,) = kg.rows("SELECT ?r ?b WHERE { ?g prov:wasGeneratedBy ?r . ?r kgc:backend ?b }")
        assert run["r"] == f"urn:kgc:run:{line['provenance']['run']}" and run["b"] == "llamacpp"
    # The printed lines build the same graph elsewhere (provenance included): nothing lost.
    lines = tmp_path / "out.jsonl"
    lines.write_text(done.stdout, encoding="utf-8")
    assert kgc("graph", "build", str(tmp_path / "kg2"), str(lines), "-q", cwd=tmp_path).returncode == 0
    with Graph.open(str(store), read_only=True) as a, Graph.open(str(tmp_path / "kg2"), read_only=True) as b:
        assert sorted(map(str, a.store.quads())) == sorted(map(str, b.store.quads()))


def test_show_and_stats_commands(tmp_path):
    store = tmp_path / "kg"
    with Graph.open(str(store)) as kg:
        kg.add([Document("d1", TEXT, {"NER": ner({"person": ["Ada Lovelace", "Charles Babbage"]}),
                                      "RE": re_({"work with": [{"head": "Ada Lovelace", "tail": "Charles Babbage"}]})})])
    shown = kgc("graph", "show", str(store), "Ada Lovelace", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "—work with→ Charles Babbage  [1 documents]" in shown.stdout
    assert "[Ada Lovelace] worked with [Charles Babbage] in London." in shown.stdout
    missing = kgc("graph", "show", str(store), "Ada Lovelac", cwd=tmp_path)
    assert missing.returncode == 1 and "did you mean: Ada Lovelace (person)" in missing.stderr
    stats = json.loads(kgc("graph", "stats", str(store), "--json", cwd=tmp_path).stdout)
    assert (stats["documents"], stats["entities"], stats["relations"]) == (1, 2, 1)
