"""Entity resolution: type-scoped proposals, reviewed decisions, history, idempotent apply, the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kgcore import InputError

pytest.importorskip("pyoxigraph", reason="the graph extra: pip install 'kgcore[graph]'")
pytest.importorskip("rapidfuzz", reason="the graph extra: pip install 'kgcore[graph]'")

from kgc_graph.graph import Graph  # noqa: E402
from kgc_graph.model import RESOLUTION_GRAPH, Document, Result, entity_iri  # noqa: E402
from kgc_graph.resolve import apply, canonical, history, members, propose  # noqa: E402

EU, EUROPEAN_UNION, THE_EU = (entity_iri(n, "organization") for n in ("EU", "European Union", "the European Union"))
EU_PLACE = entity_iri("EU", "location")
DOCS = [
    ("d1", "The European Union (EU) met in Brussels.", {"organization": ["European Union", "EU"]}),
    ("d2", "Leaders of the European Union met. The EU agreed.", {"organization": ["the European Union", "EU"]}),
    ("d3", "The European Union and the ＥＵ market; the EU region.",
     {"organization": ["European Union", "ＥＵ"], "location": ["EU"]}),
    ("d4", "Ada Lovelace met Charles Babbage.", {"person": ["Ada Lovelace", "Charles Babbage"]}),
]


def documents(rows) -> list[Document]:
    return [Document(i, text, {"NER": Result("NER", answer, "mentions")}) for i, text, answer in rows]


@pytest.fixture
def kg(tmp_path):
    with Graph.open(str(tmp_path / "kg")) as graph:
        graph.add(documents(DOCS))
        yield graph


def decide(path, proposals, *decisions):
    path.write_text("".join(json.dumps({**p, "decision": d}, ensure_ascii=False) + "\n"
                            for p, d in zip(proposals, decisions)), encoding="utf-8")
    return path


def quads(graph) -> set[str]:
    return {str(q) for q in graph.store.quads()}


def test_proposals_stay_within_a_type(kg):
    before = quads(kg)
    [proposal] = propose(kg)
    assert quads(kg) == before  # proposing changes nothing
    assert proposal["decision"] is None and proposal["type"] == "organization"
    # EU: 3 documents (the full-width ＥＵ is the same entity); European Union: 2; the European Union: 1
    assert [(m["label"], m["documents"]) for m in proposal["members"]] == [
        ("EU", 3), ("European Union", 2), ("the European Union", 1)]
    assert proposal["canonical"] == EU and EU_PLACE not in {m["iri"] for m in proposal["members"]}
    assert proposal["reasons"] == ["acronym", "article"] and proposal["score"] == 90.0
    pairs = {tuple(p["labels"]): p["reasons"] for p in proposal["pairs"]}
    assert pairs == {("EU", "European Union"): ["acronym"], ("EU", "the European Union"): ["acronym"],
                     ("European Union", "the European Union"): ["article"]}
    example = proposal["members"][1]["examples"][0]
    assert (example["document"], example["text"], example["start"]) == ("d1", "European Union", 4)
    assert propose(kg) == [proposal]  # deterministic
    assert propose(kg, threshold=95)[0]["reasons"] == ["article"]  # acronyms score 90


def test_case_punctuation_and_fuzzy_variants(tmp_path):
    rows = [("a", "U.S. and US; Coca-Cola and Coca Cola; Microsoft Corporation and Microsoft Corporaton.",
             {"organization": ["U.S.", "US", "Coca-Cola", "Coca Cola", "Microsoft Corporation",
                               "Microsoft Corporaton"]}),
            ("b", "Boeing 737 and Boeing 747; C# and C.", {"product": ["Boeing 737", "Boeing 747", "C#", "C"]}),
            ("c", "The Hague, or Hague.", {"location": ["The Hague", "Hague"]})]
    with Graph.open(str(tmp_path / "kg")) as graph:
        graph.add(documents(rows))
        found = {tuple(m["label"] for m in p["members"]): p["reasons"] for p in propose(graph)}
    # the canonical entity comes first: the most documents, the longest name without its article, then in order
    assert found == {("Coca Cola", "Coca-Cola"): ["punctuation"], ("Hague", "The Hague"): ["article"],
                     ("Microsoft Corporation", "Microsoft Corporaton"): ["similar"], ("U.S.", "US"): ["punctuation"]}


def test_chinese_names_are_not_split_or_abbreviated(tmp_path):
    rows = [("z1", "北京大学和北大的学生在北京。", {"organization": ["北京大学", "北大", "北京"]}),
            ("z2", "北京大学（ＰＫＵ）", {"organization": ["北京大学", "ＰＫＵ"]}),
            ("z3", "PKU students", {"organization": ["PKU"]})]
    with Graph.open(str(tmp_path / "kg")) as graph:
        graph.add(documents(rows))
        assert propose(graph) == []  # 北大 is not taken for an abbreviation of 北京大学
        # the full-width and half-width forms of a name are one entity
        assert graph.find("PKU", "organization") == [entity_iri("ＰＫＵ", "organization")]
        assert graph.entity(entity_iri("PKU", "organization"))["documents"] == 2


def test_accept_links_members_and_records_history(kg, tmp_path):
    [proposal] = propose(kg)
    path = decide(tmp_path / "decisions.jsonl", [proposal], "accept")
    assert apply(kg, path, by="reviewer") == {"accepted": 1, "rejected": 0, "undecided": 0, "unchanged": 0}
    assert canonical(kg, THE_EU) == canonical(kg, EU) == EU and canonical(kg, EU_PLACE) == EU_PLACE
    assert members(kg, EUROPEAN_UNION) == [EU] + sorted([EUROPEAN_UNION, THE_EU])
    assert members(kg, EU_PLACE) == [EU_PLACE]
    same = kg.rows(f"SELECT ?b WHERE {{ GRAPH <{RESOLUTION_GRAPH}> {{ <{THE_EU}> owl:sameAs ?b }} }} ORDER BY ?b")
    assert same == [{"b": b} for b in sorted([EU, EUROPEAN_UNION])]
    [record] = history(kg)
    assert record["decision"] == "accept" and record["canonical"] == EU and record["by"] == "reviewer"
    assert record["members"] == sorted([EU, EUROPEAN_UNION, THE_EU]) and record["score"] == 90.0
    assert record["file"] == str(path.resolve()) and record["line"] == 1 and record["time"].endswith("Z")
    assert propose(kg) == []  # an accepted merge is not proposed again
    before = quads(kg)
    assert apply(kg, path)["unchanged"] == 1
    assert quads(kg) == before  # applying the same file twice changes nothing
    # deleting a document keeps the history; links naming an entity left without support go
    kg.delete(["d2"])
    assert canonical(kg, EUROPEAN_UNION) == EU and len(history(kg)) == 1
    with pytest.raises(InputError, match="no entity"):
        canonical(kg, THE_EU)
    with pytest.raises(InputError, match="'EU' is not an entity IRI"):
        members(kg, "EU")


def test_reject_is_recorded_and_not_proposed_again(kg, tmp_path):
    [proposal] = propose(kg)
    apply(kg, decide(tmp_path / "d.jsonl", [proposal], "reject"))
    assert propose(kg) == [] and canonical(kg, THE_EU) == THE_EU and members(kg, EU) == [EU]
    assert [r["decision"] for r in history(kg)] == ["reject"]
    # a new name is proposed with the best of them; no proposal joins a rejected pair
    kg.add(documents([("d5", "The E.U. said.", {"organization": ["E.U."]})]))
    [again] = propose(kg)
    assert [p["labels"] for p in again["pairs"]] == [["EU", "E.U."]] and again["reasons"] == ["punctuation"]
    assert [m["label"] for m in again["members"]] == ["EU", "E.U."]


def test_edited_members_and_undecided_lines(kg, tmp_path):
    [proposal] = propose(kg)
    narrowed = {**proposal, "members": proposal["members"][1:], "canonical": EUROPEAN_UNION}
    path = decide(tmp_path / "d.jsonl", [narrowed, proposal], "accept", None)
    assert apply(kg, path) == {"accepted": 1, "rejected": 0, "undecided": 1, "unchanged": 0}
    assert members(kg, THE_EU) == [EUROPEAN_UNION, THE_EU] and canonical(kg, EU) == EU
    [left] = propose(kg)  # EU still joins the merged pair
    assert {m["iri"] for m in left["members"]} == {EU, EUROPEAN_UNION, THE_EU}
    assert [p["labels"] for p in left["pairs"]] == [["EU", "European Union"], ["EU", "the European Union"]]
    apply(kg, decide(tmp_path / "d2.jsonl", [left], "accept"))
    assert canonical(kg, THE_EU) == EU and members(kg, EU) == [EU] + sorted([EUROPEAN_UNION, THE_EU])


def test_decisions_as_objects_name_their_source(kg):
    [proposal] = propose(kg)
    before = quads(kg)
    with pytest.raises(InputError, match="different types") as error:
        apply(kg, [proposal | {"decision": "reject"}, {"decision": "accept", "members": [EU, EU_PLACE],
                                                      "canonical": EU}], source="the web page")
    assert (error.value.path, error.value.line, error.value.field) == ("the web page", 2, "members")
    assert quads(kg) == before  # every decision is checked before anything is written
    assert apply(kg, [proposal | {"decision": "accept"}], by="ada", source="the web page")["accepted"] == 1
    [record] = history(kg)
    assert (record["file"], record["line"], record["by"]) == ("the web page", 1, "ada")


@pytest.mark.parametrize("line, field, message", [
    ("{oops", None, "not a JSON line"),
    ('["accept"]', None, "a decision is a JSON object"),
    ('{"decision": "yes"}', "decision", "none of accept, reject, null"),
    ('{"decision": "accept", "members": ["X"]}', "members", "two or more distinct"),
    ('{"decision": "accept", "members": ["urn:kgc:entity:zz>", "{eu}"], "canonical": "{eu}"}', "members",
     "not an entity IRI"),
    ('{"decision": "accept", "members": ["urn:kgc:entity:00ff", "{eu}"], "canonical": "{eu}"}', "members",
     "no entity urn:kgc:entity:00ff"),
    ('{"decision": "accept", "members": ["{place}", "{eu}"], "canonical": "{eu}"}', "members", "different types"),
    ('{"decision": "reject", "members": ["{the}", "{eu}"], "canonical": "{place}"}', "canonical", "one of"),
    ('{"decision": "reject", "members": ["{the}", "{eu}"], "canonical": "{eu}", "score": "high"}', "score",
     "number"),
])
def test_malformed_decisions_name_file_line_and_field(kg, tmp_path, line, field, message):
    path = tmp_path / "bad.jsonl"
    line = line.replace("{eu}", EU).replace("{the}", THE_EU).replace("{place}", EU_PLACE)
    path.write_text(f'{{"decision": null, "members": []}}\n\n{line}\n', encoding="utf-8")
    before = quads(kg)
    with pytest.raises(InputError, match=message) as error:
        apply(kg, path)
    assert (error.value.path, error.value.line, error.value.field) == (str(path), 3, field)
    assert quads(kg) == before


def kgc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kgcore.cli", "graph", "resolve", *args], capture_output=True,
                          text=True, encoding="utf-8", check=check)


def test_command_proposes_then_applies(tmp_path):
    store, out = str(tmp_path / "kg"), tmp_path / "decisions.jsonl"
    with Graph.open(store) as graph:
        graph.add(documents(DOCS))
    assert "1 proposals (3 entities)" in kgc(store, "-o", str(out)).stderr
    [proposal] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert proposal["decision"] is None and proposal["canonical"] == EU
    assert "exists" in kgc(store, "-o", str(out), check=False).stderr  # a decisions file is never overwritten
    assert json.loads(kgc(store, "--threshold", "95").stdout)["reasons"] == ["article"]
    decide(out, [proposal], "accept")
    assert "1 accepted" in kgc(store, "--apply", str(out), "--by", "me").stderr
    assert "1 unchanged" in kgc(store, "--apply", str(out)).stderr
    assert kgc(store).stdout == ""
    out.write_text('{"decision": "maybe"}\n', encoding="utf-8")
    failed = kgc(store, "--apply", str(out), check=False)
    assert failed.returncode == 1 and f"{out}:1:" in failed.stderr and "field 'decision'" in failed.stderr
    with Graph.open(store, read_only=True) as graph:
        assert canonical(graph, THE_EU) == EU and history(graph)[0]["by"] == "me"
