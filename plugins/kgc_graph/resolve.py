"""Entity resolution: propose merges within an entity type, review them in a decisions file, apply them.

Nothing merges without an accepted decision. :func:`propose` reads the graph and never changes it;
:func:`apply` records every decision of a reviewed file in :data:`RESOLUTION_GRAPH` (an accepted merge
as ``owl:sameAs`` and ``kgc:canonical`` links, each decision as a ``kgc:Decision`` record kept as
history). docs/graph.md describes the rules and the file.
"""

from __future__ import annotations

import getpass
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pyoxigraph import NamedNode
from rapidfuzz import fuzz, process

from kgcore import InputError

from .graph import Graph
from .model import KGC, OWL, PROV, RDF, RESOLUTION_GRAPH, XSD, _digest, literal, normalize

#: Score of each rule (0-100); ``similar`` scores the token_sort_ratio of the names.
RULES = {"punctuation": 100.0, "article": 98.0, "acronym": 90.0}
ARTICLES = ("the",)
#: Words an acronym may skip ("DoD", "Department of Defense"; "EU", "the European Union").
_MINOR = {"of", "the", "and", "for", "in", "on", "at", "to", "a", "an", "de", "&"}
_KEEP = set("#&@%")  # punctuation that tells names apart: C# is not C
_IRI = re.compile(rf"{re.escape(KGC)}entity:[0-9a-f]+")
_RES = f"<{RESOLUTION_GRAPH}>"


@dataclass(frozen=True)
class _Entity:
    iri: str
    type: str
    label: str
    documents: int

    @property
    def words(self) -> list[str]:
        """The normalized label's words, punctuation read as spaces (CJK text is never split)."""
        return "".join(c if c in _KEEP or not unicodedata.category(c).startswith("P") else " "
                       for c in normalize(self.label)).split()

    @property
    def key(self) -> str:
        """The words without a leading article: what the names are compared by."""
        words = self.words
        return " ".join(words[1:] if len(words) > 1 and words[0] in ARTICLES else words)

    @property
    def acronym(self) -> str | None:
        """The label as an acronym (2-10 Latin letters, mostly capitals: EU, U.S., DoD), case-folded."""
        letters = self.key.replace(" ", "")
        upper = sum(c.isupper() for c in unicodedata.normalize("NFKC", self.label))
        ok = 2 <= len(letters) <= 10 and letters.isascii() and letters.isalpha() and 2 * upper >= len(letters)
        return letters if ok else None

    def initials(self) -> set[str]:
        """The initials of the content words, and of all the words (names of two or more words)."""
        words = self.key.split()
        content = [w for w in words if w not in _MINOR]
        return {"".join(w[0] for w in ws) for ws in (content, words) if len(ws) > 1} - {"".join(words)}


def propose(graph: Graph, threshold: float = 90.0, examples: int = 2) -> list[dict[str, Any]]:
    """Merge proposals within each entity type: clusters of entities whose names likely name one thing.

    Pairs scoring ``threshold`` or more (0-100) are linked, the best first; a pair already merged or rejected
    by a recorded decision is left out, and so is a link that would join the two entities of a rejected pair.
    Each proposal names the canonical entity (most documents, then the longest name not counting a leading
    article, then the first label in order), its members with labels, document counts and up to ``examples``
    spans, and the pairs that link them with their scores and reasons. Ordered by type, then canonical label.
    """
    entities = _entities(graph)
    decided, clusters = _Clusters(), _Clusters()
    for a, b in _links(graph):
        decided.union(a, b)
        clusters.union(a, b)
    rejected = _rejected(graph)
    by_type: dict[str, list[_Entity]] = defaultdict(list)
    for entity in entities.values():
        if entity.key:
            by_type[entity.type].append(entity)
    found = sorted(((pair, match) for type_ in sorted(by_type) for pair, match in
                    _candidates(by_type[type_], threshold).items()), key=lambda f: (-f[1][0], f[0]))
    kept = []
    for (a, b), match in found:
        apart = clusters.find(a) != clusters.find(b) and any(
            frozenset((x, y)) in rejected for x in clusters.group(a) for y in clusters.group(b))
        if apart or frozenset((a, b)) in rejected or decided.find(a) == decided.find(b):
            continue
        clusters.union(a, b)
        kept.append(((a, b), match))
    pairs = defaultdict(list)
    for pair, match in kept:
        pairs[clusters.find(pair[0])].append((pair, match))
    proposals = [_proposal(graph, [entities[i] for i in clusters.group(root) if i in entities], links, examples)
                 for root, links in pairs.items()]
    return sorted(proposals, key=lambda p: (p["type"], p["label"], p["canonical"]))


def apply(graph: Graph, decisions: str | Path | Iterable[Mapping[str, Any]], by: str | None = None,
          source: str = "") -> dict[str, int]:
    """Record reviewed decisions (a decisions file, or its lines as objects, ``source`` naming where they
    came from); returns how many were accepted, rejected, undecided (``"decision": null``) and unchanged
    (recorded before: applying a file again changes nothing).

    Every decision is checked before anything is written: a malformed one raises :class:`InputError`
    naming the file (or ``source``), line and field.
    """
    if isinstance(decisions, (str, Path)):
        path = Path(decisions)
        source, decisions = str(path.resolve()), _read(graph, path)
    else:
        decisions = [(number, _checked(graph, data, {"path": source or "decisions", "line": number}))
                     for number, data in enumerate(decisions, 1)]
    time = literal(datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), XSD + "dateTime")
    counts = Counter({"accepted": 0, "rejected": 0, "undecided": 0, "unchanged": 0})
    for line, (data, iris) in decisions:
        decision = data.get("decision")
        if decision is None:
            counts["undecided"] += 1
            continue
        node = f"{KGC}decision:{_digest(decision, data['canonical'], *sorted(iris))}"
        if graph.query(f"ASK {{ GRAPH {_RES} {{ <{node}> a kgc:Decision }} }}"):
            counts["unchanged"] += 1
            continue
        record = [(node, RDF + "type", NamedNode(KGC + "Decision")), (node, KGC + "decision", literal(decision)),
                  (node, KGC + "chosen", NamedNode(data["canonical"])), (node, PROV + "generatedAtTime", time),
                  (node, KGC + "decidedBy", literal(data.get("by") or by or _user())),
                  (node, KGC + "decisionsFile", literal(source)), (node, KGC + "line", literal(line))]
        record += [(node, KGC + "member", NamedNode(iri)) for iri in iris]
        record += [(node, KGC + "reason", literal(r)) for r in data.get("reasons") or ()]
        if data.get("score") is not None:
            record.append((node, KGC + "score", literal(f"{data['score']:.1f}", XSD + "decimal")))
        update = ""
        if decision == "accept":
            group = sorted({m for iri in iris for m in members(graph, iri)})
            values = " ".join(f"<{m}>" for m in group)
            update = f"""DELETE {{ GRAPH {_RES} {{ ?a ?p ?b }} }} WHERE {{ GRAPH {_RES} {{ ?a ?p ?b }}
                         VALUES ?a {{ {values} }} VALUES ?p {{ owl:sameAs kgc:canonical }} }} ;\n"""
            record += [(a, OWL + "sameAs", NamedNode(b)) for a in group for b in group if a != b]
            record += [(m, KGC + "canonical", NamedNode(data["canonical"])) for m in group]
        body = " . ".join(f"<{s}> <{p}> {o}" for s, p, o in record)
        graph.store.update(f"{update}INSERT DATA {{ GRAPH {_RES} {{ {body} }} }}")
        counts["accepted" if decision == "accept" else "rejected"] += 1
    return dict(counts)


def canonical(graph: Graph, iri: str) -> str:
    """The canonical entity of ``iri`` by the accepted decisions (``iri`` itself when none merged it)."""
    _types(graph, [iri])
    rows = graph.rows(f"SELECT ?c WHERE {{ GRAPH {_RES} {{ <{iri}> kgc:canonical ?c }} }}")
    return rows[0]["c"] if rows else iri


def members(graph: Graph, iri: str) -> list[str]:
    """The entities merged with ``iri`` by the accepted decisions, ``iri`` included, the canonical one first."""
    _types(graph, [iri])
    same = {r["m"] for r in graph.rows(f"SELECT ?m WHERE {{ GRAPH {_RES} {{ <{iri}> owl:sameAs ?m }} }}")} | {iri}
    first = canonical(graph, iri)
    return sorted(same, key=lambda m: (m != first, m))


def history(graph: Graph) -> list[dict[str, Any]]:
    """Every recorded decision, the oldest first: decision, members, canonical, score, reasons, time, who, file."""
    rows = graph.rows(f"""SELECT ?d ?p ?o WHERE {{ GRAPH {_RES} {{ ?d a kgc:Decision ; ?p ?o }} }}""")
    records: dict[str, dict[str, Any]] = defaultdict(lambda: {"members": [], "reasons": []})
    names = {KGC + "decision": "decision", KGC + "chosen": "canonical", KGC + "score": "score",
             PROV + "generatedAtTime": "time", KGC + "decidedBy": "by", KGC + "decisionsFile": "file",
             KGC + "line": "line", KGC + "member": "members", KGC + "reason": "reasons"}
    for row in rows:
        name = names.get(row["p"])
        if name in ("members", "reasons"):
            records[row["d"]][name].append(row["o"])
        elif name:
            records[row["d"]][name] = float(row["o"]) if name == "score" else row["o"]
    for record in records.values():
        record["members"].sort()
        record["reasons"].sort()
    return [records[d] for d in sorted(records, key=lambda d: (records[d]["time"], records[d]["file"],
                                                                 records[d]["line"], d))]


# -- proposing ------------------------------------------------------------------------------
def _entities(graph: Graph) -> dict[str, _Entity]:
    """Every entity with its most used label and how many documents name it."""
    labels: dict[str, Counter] = defaultdict(Counter)
    documents, types = defaultdict(set), {}
    for row in graph.rows("SELECT ?e ?t ?l ?g WHERE { GRAPH ?g { ?e a kgc:Entity ; kgc:entityType ?t ; "
                          "rdfs:label ?l } }"):
        labels[row["e"]][row["l"]] += 1
        documents[row["e"]].add(row["g"])
        types[row["e"]] = row["t"]
    return {iri: _Entity(iri, types[iri], min(labels[iri], key=lambda l: (-labels[iri][l], l)), len(documents[iri]))
            for iri in sorted(labels)}


def _candidates(entities: list[_Entity], threshold: float) -> dict[tuple[str, str], tuple[float, list[str]]]:
    """Pairs of one type's entities scoring ``threshold`` or more, with the rules that matched; a pair that no
    other rule matched may be ``similar``: its token_sort_ratio is the score."""
    found: dict[tuple[str, str], tuple[float, list[str]]] = {}

    def add(a: _Entity, b: _Entity, rule: str, score: float) -> None:
        pair = (a.iri, b.iri) if a.iri < b.iri else (b.iri, a.iri)
        best, rules = found.get(pair, (0.0, []))
        if rule != "similar" or not rules:
            found[pair] = (max(best, score), sorted({*rules, rule}))

    same: dict[str, list[_Entity]] = defaultdict(list)
    initials: dict[str, list[_Entity]] = defaultdict(list)
    for entity in entities:
        same[entity.key.replace(" ", "")].append(entity)
        for form in entity.initials():
            initials[form].append(entity)
    for group in same.values():
        for a, b in combinations(group, 2):
            rule = "punctuation" if "".join(a.words) == "".join(b.words) else "article"
            add(a, b, rule, RULES[rule])
    for entity in entities:
        for other in initials.get(entity.acronym or "", ()):
            if other is not entity:
                add(entity, other, "acronym", RULES["acronym"])
    keys = [e.key for e in entities]
    for i, entity in enumerate(entities):
        for _, score, j in process.extract(entity.key, keys[i + 1:], scorer=fuzz.token_sort_ratio, limit=None,
                                           score_cutoff=threshold):
            other = entities[i + 1 + j]
            if _numbers(entity.key) == _numbers(other.key):
                add(entity, other, "similar", round(score, 1))
    return {pair: found for pair, found in found.items() if found[0] >= threshold}


def _numbers(text: str) -> list[str]:
    """Numbers in a name: names with different numbers (Boeing 737, Boeing 747) are not similar."""
    return re.findall(r"\d+", text)


def _proposal(graph: Graph, entities: list[_Entity], pairs: list[tuple], examples: int) -> dict[str, Any]:
    entities = sorted(entities, key=lambda e: (-e.documents, -len(e.key), e.label, e.iri))
    order = {e.iri: i for i, e in enumerate(entities)}
    links = []
    for pair, (score, rules) in pairs:
        a, b = (entities[order[iri]] for iri in sorted(pair, key=order.get))
        links.append({"labels": [a.label, b.label], "score": score, "reasons": rules,
                      "similarity": round(fuzz.token_sort_ratio(a.key, b.key), 1)})
    links.sort(key=lambda p: (-p["score"], p["labels"]))
    return {"decision": None, "type": entities[0].type, "canonical": entities[0].iri, "label": entities[0].label,
            "score": min(p["score"] for p in links), "reasons": sorted({r for p in links for r in p["reasons"]}),
            "members": [{"iri": e.iri, "label": e.label, "documents": e.documents,
                         "examples": _examples(graph, e.iri, examples)} for e in entities],
            "pairs": links}


def _examples(graph: Graph, iri: str, limit: int) -> list[dict[str, Any]]:
    """Where documents name the entity: the span and the text around it."""
    rows = graph.rows(f"""SELECT ?g ?start ?end ?text WHERE {{ GRAPH ?g {{ ?m kgc:mentionOf <{iri}> ;
        kgc:start ?start ; kgc:end ?end . ?g kgc:text ?text }} }} ORDER BY ?g ?start LIMIT {int(limit)}""")
    return [{"document": unquote(r["g"].removeprefix(KGC + "doc:")), "start": r["start"], "end": r["end"],
             "text": r["text"][r["start"]:r["end"]],
             "context": r["text"][max(0, r["start"] - 40):r["end"] + 40]} for r in rows]


def _links(graph: Graph) -> list[tuple[str, str]]:
    return [(r["a"], r["b"]) for r in graph.rows(f"SELECT ?a ?b WHERE {{ GRAPH {_RES} {{ ?a owl:sameAs ?b }} }}")]


def _rejected(graph: Graph) -> set[frozenset[str]]:
    """The pairs of every rejected decision's members."""
    groups = defaultdict(list)
    for row in graph.rows(f"""SELECT ?d ?m WHERE {{ GRAPH {_RES} {{ ?d a kgc:Decision ; kgc:decision "reject" ;
                                                                    kgc:member ?m }} }}"""):
        groups[row["d"]].append(row["m"])
    return {frozenset(pair) for group in groups.values() for pair in combinations(group, 2)}


class _Clusters:
    """Union-find over entity IRIs that knows each cluster's members."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}

    def find(self, x: str) -> str:
        while self.parent.setdefault(x, x) != x:
            x = self.parent[x]
        return x

    def group(self, x: str) -> set[str]:
        root = self.find(x)
        return self.members.get(root, {root})

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.members[rb] = self.group(rb) | self.members.pop(ra, {ra})
            self.parent[ra] = rb


# -- applying -------------------------------------------------------------------------------
def _read(graph: Graph, path: Path) -> list[tuple[int, tuple[dict[str, Any], list[str]]]]:
    """The decisions file's lines, checked: ``(line number, (the line's object, member IRIs))``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the decisions file: {exc}", path=str(path)) from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = {"path": str(path), "line": number}
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not a JSON line: {exc.msg}", **where) from None
        out.append((number, _checked(graph, data, where)))
    return out


def _checked(graph: Graph, data: Any, where: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A decision, checked, and its member IRIs."""
    if not isinstance(data, Mapping):
        raise InputError("a decision is a JSON object", **where)
    data = dict(data)
    if data.get("decision") not in (None, "accept", "reject"):
        raise InputError(f"{data['decision']!r} is none of accept, reject, null", field="decision", **where)
    members_ = data.get("members")
    iris = [m.get("iri") if isinstance(m, dict) else m for m in members_] if isinstance(members_, list) else []
    if data.get("decision") is not None:
        if not all(isinstance(i, str) for i in iris) or len(set(iris)) < max(2, len(iris)):
            raise InputError("members must name two or more distinct entities", field="members", **where)
        types = _types(graph, iris, where)
        if len(set(types.values())) > 1:
            raise InputError(f"members have different types ({', '.join(sorted(set(types.values())))}): "
                             "entities merge only within a type", field="members", **where)
        if data.get("canonical") not in iris:
            raise InputError("canonical must be one of the members' IRIs", field="canonical", **where)
        score = data.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise InputError("score must be a number", field="score", **where)
        reasons = data.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise InputError("reasons must be a list of strings", field="reasons", **where)
        if not isinstance(data.get("by", ""), str):
            raise InputError("by must be a string", field="by", **where)
    return data, iris


def _types(graph: Graph, iris: list[str], where: dict[str, Any] | None = None) -> dict[str, str]:
    """The type of each entity; an IRI that is not one of the graph's entities raises :class:`InputError`."""
    where = {"field": "members", **where} if where else {}
    for iri in iris:
        if not isinstance(iri, str) or not _IRI.fullmatch(iri):
            raise InputError(f"{iri!r} is not an entity IRI ({KGC}entity:...)", **where)
    values = " ".join(f"<{i}>" for i in iris)
    rows = graph.rows(f"SELECT DISTINCT ?e ?t WHERE {{ ?e kgc:entityType ?t }} VALUES ?e {{ {values} }}")
    types = {r["e"]: r["t"] for r in rows}
    missing = [i for i in iris if i not in types]
    if missing:
        raise InputError(f"no entity {missing[0]} in the graph", **where)
    return types


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
