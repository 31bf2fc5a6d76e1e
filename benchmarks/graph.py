"""Knowledge-graph ingest, lookup and export, against a bare pyoxigraph bulk load of the same quads.

    python benchmarks/graph.py --docs 100000

Synthetic documents (NER and RE results; people, organizations and cities drawn from pools of
15,000, 5,000 and 2,000 names with Zipf frequencies, as names recur in a news corpus) are added with ``Graph.add`` into a fresh embedded store; the same quads, written once
as N-Quads, are bulk-loaded into another fresh store by pyoxigraph alone. Each side runs in its own
process so that peak RSS is its own. Then: entity lookup with provenance (``Graph.find`` +
``Graph.entity``) on people picked from random documents (so often-mentioned people are looked up
more often), the lookup of the most-mentioned person, and export rates of Turtle and GraphML.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

FIRST = ["Ada", "Alan", "Grace", "Marie", "Emmy", "Niels", "Lise", "Paul", "Rosalind", "Enrico", "Chen", "Wei",
         "Amara", "Kofi", "Ines", "Yuki", "Omar", "Sofia", "Ravi", "Elena", "Tariq", "Mei", "Jonas", "Layla", "Ivan"]
LAST = ["Lovelace", "Turing", "Hopper", "Curie", "Noether", "Bohr", "Meitner", "Dirac", "Franklin", "Fermi"]
PEOPLE = [f"{first} {last}{'' if i == 0 else f'-{i}'}" for i in range(60) for first in FIRST for last in LAST]
CITIES = [f"City {i}" for i in range(2_000)]
ORGS = [f"Institute {i}" for i in range(5_000)]


def _zipf(names: list[str]) -> list[float]:
    """Cumulative Zipf weights (the k-th name k times rarer than the first)."""
    return list(itertools.accumulate(1 / rank for rank in range(1, len(names) + 1)))


def documents(n: int, seed: int = 7):
    """``n`` documents with NER and RE results (about ten statements each, with spans and a run)."""
    from kgc_graph.model import Document, Provenance, Result

    rng = random.Random(seed)
    run = Provenance("llamacpp", "smollm2", "bench", "2026-12-01T10:00:00Z")
    weights = {id(pool): _zipf(pool) for pool in (PEOPLE, CITIES, ORGS)}
    pick = lambda pool, k=1: rng.choices(pool, cum_weights=weights[id(pool)], k=k)  # noqa: E731
    for i in range(n):
        people = pick(PEOPLE, 2)
        (city,), (org,) = pick(CITIES), pick(ORGS)
        text = f"{people[0]} met {people[1]} at {org} in {city} (report {i})."
        yield Document(f"doc-{i}", text, {
            "NER": Result("NER", {"person": people, "location": [city], "organization": [org]}, "mentions",
                          provenance=run),
            "RE": Result("RE", {"work for": [{"head": p, "tail": org} for p in people],
                                "located in": [{"head": org, "tail": city}]}, "relations", provenance=run)})


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ours(store: str, n: int) -> dict:
    from kgc_graph import Graph

    start = time.perf_counter()
    with Graph.open(store) as graph:
        stats = graph.add(documents(n), batch_size=1000)
    return {"seconds": time.perf_counter() - start, "quads": stats.quads, "rss_mb": _rss_mb()}


def bare(store: str, nquads: str) -> dict:
    import pyoxigraph

    start = time.perf_counter()
    target = pyoxigraph.Store(store)
    target.bulk_load(path=nquads, format=pyoxigraph.RdfFormat.N_QUADS)
    target.flush()
    return {"seconds": time.perf_counter() - start, "rss_mb": _rss_mb()}


def write_nquads(path: str, n: int) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for doc in documents(n):
            quads = doc.quads()
            count += len(quads)
            fh.write("".join(f"{q} .\n" for q in quads))
    return count


def lookups(store: str, k: int, docs: int) -> dict:
    """Lookup times of ``k`` people drawn uniformly from the graph's people, of ``k`` people drawn from
    random documents (often-mentioned people more often), and of the most-mentioned person."""
    from kgc_graph import Graph

    rng = random.Random(3)
    sample = set(rng.sample(range(docs), k))
    by_mention = [doc.results["NER"].answer["person"][0] for i, doc in enumerate(documents(docs)) if i in sample]
    out = {}
    with Graph.open(store, read_only=True) as graph:
        people = sorted(r["l"] for r in graph.rows("SELECT DISTINCT ?l WHERE { ?e kgc:entityType 'person' ; "
                                                   "rdfs:label ?l }"))
        graph.find(people[0], "person")  # the first lookup reads the graph's types and predicates once
        for name, names in (("uniform", rng.sample(people, k)), ("by_mention", by_mention), ("top", [PEOPLE[0]])):
            times = []
            for person in names:
                start = time.perf_counter()
                for iri in graph.find(person, "person"):
                    view = graph.entity(iri)
                times.append(1000 * (time.perf_counter() - start))
            out[name] = {"p50_ms": statistics.median(times), "p95_ms": max(times) if len(times) == 1 else
                         statistics.quantiles(times, n=20)[18], "documents": view["documents"],
                         "facts": view["fact_count"]}
    return out


def exports(store: str, folder: str) -> dict:
    from kgc_graph import Graph
    from kgcore import get_host

    out = {}
    with Graph.open(store, read_only=True) as graph:
        quads = graph.stats()["quads"]
        for fmt, name in (("ttl", "kg.ttl"), ("graphml", "kg.graphml")):
            start = time.perf_counter()
            get_host().registry.load("exporter", fmt)().export(graph, Path(folder) / name)
            seconds = time.perf_counter() - start
            out[fmt] = {"seconds": seconds, "quads_per_s": quads / seconds}
    return out


def _child(function: str, *args) -> dict:
    """Run one measurement in a fresh process (its own peak RSS)."""
    code = f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); import graph as g; " \
           f"print(json.dumps(g.{function}(*{list(args)!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nquads = f"{tmp}/all.nq"
        count = write_nquads(nquads, args.docs)
        ours_result = _child("ours", f"{tmp}/ours", args.docs)
        bare_result = _child("bare", f"{tmp}/bare", nquads)
        lookup = _child("lookups", f"{tmp}/ours", args.lookups, args.docs)
        exported = _child("exports", f"{tmp}/ours", tmp)
        small = _child("ours", f"{tmp}/small", args.docs // 10)
    ratio = ours_result["seconds"] / bare_result["seconds"]
    print(f"## Graph ingest, {args.docs:,} documents, {count:,} quads ({machine()})")
    print("| side | seconds | quads/s | peak RSS MB |\n|---|---:|---:|---:|")
    print(f"| kgc Graph.add (model + transactions of 1,000 documents) | {ours_result['seconds']:.1f} | "
          f"{count / ours_result['seconds']:,.0f} | {ours_result['rss_mb']:.0f} |")
    print(f"| bare pyoxigraph bulk_load of the same N-Quads | {bare_result['seconds']:.1f} | "
          f"{count / bare_result['seconds']:,.0f} | {bare_result['rss_mb']:.0f} |")
    print(f"\nratio kgc / bare = **{ratio:.2f}×**; peak RSS with {args.docs // 10:,} documents: "
          f"{small['rss_mb']:.0f} MB, with {args.docs:,}: {ours_result['rss_mb']:.0f} MB")
    print(f"\nentity lookup with provenance (Graph.find + Graph.entity, 50 best-supported facts, 3 sources each):")
    print("| people looked up | p50 ms | p95 ms |\n|---|---:|---:|")
    print(f"| {args.lookups} drawn uniformly from the graph's people | {lookup['uniform']['p50_ms']:.1f} | "
          f"{lookup['uniform']['p95_ms']:.1f} |")
    print(f"| {args.lookups} drawn from random documents | {lookup['by_mention']['p50_ms']:.1f} | "
          f"{lookup['by_mention']['p95_ms']:.1f} |")
    top = lookup["top"]
    print(f"| the most-mentioned person ({top['documents']:,} documents, {top['facts']:,} facts) | "
          f"{top['p50_ms']:.1f} | |\n")
    for fmt, result in exported.items():
        print(f"export {fmt}: {result['seconds']:.1f} s ({result['quads_per_s']:,.0f} quads/s)")


if __name__ == "__main__":
    main()
