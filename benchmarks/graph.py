"""Knowledge-graph ingest, lookup and export, against a bare pyoxigraph bulk load of the same quads.

    python benchmarks/graph.py --docs 100000

Synthetic documents (NER and RE results, names drawn from a fixed pool so entities recur across
documents) are added with ``Graph.add`` into a fresh embedded store; the same quads, written once
as N-Quads, are bulk-loaded into another fresh store by pyoxigraph alone. Each side runs in its own
process so that peak RSS is its own. Then: entity lookup with provenance (``Graph.find`` +
``Graph.entity``) on random entities, and export rates of Turtle and GraphML.
"""

from __future__ import annotations

import argparse
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

FIRST = ["Ada", "Alan", "Grace", "Marie", "Emmy", "Niels", "Lise", "Paul", "Rosalind", "Enrico", "Chen", "Wei"]
LAST = ["Lovelace", "Turing", "Hopper", "Curie", "Noether", "Bohr", "Meitner", "Dirac", "Franklin", "Fermi"]
CITIES = [f"City {i}" for i in range(300)]
ORGS = [f"Institute {i}" for i in range(200)]


def documents(n: int, seed: int = 7):
    """``n`` documents with NER and RE results (about ten statements each, with spans and a run)."""
    from kgc_graph.model import Document, Provenance, Result

    rng = random.Random(seed)
    run = Provenance("llamacpp", "smollm2", "bench", "2026-12-01T10:00:00Z")
    for i in range(n):
        people = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(2)]
        city, org = rng.choice(CITIES), rng.choice(ORGS)
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


def lookups(store: str, k: int) -> dict:
    from kgc_graph import Graph

    rng = random.Random(3)
    names = [(f"{rng.choice(FIRST)} {rng.choice(LAST)}", "person") for _ in range(k)]
    times = []
    with Graph.open(store, read_only=True) as graph:
        for name, type_ in names:
            start = time.perf_counter()
            for iri in graph.find(name, type_):
                graph.entity(iri)
            times.append(time.perf_counter() - start)
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * statistics.quantiles(times, n=20)[18]}


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
        lookup = _child("lookups", f"{tmp}/ours", args.lookups)
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
    print(f"\nentity lookup with provenance ({args.lookups} random people): p50 {lookup['p50_ms']:.1f} ms, "
          f"p95 {lookup['p95_ms']:.1f} ms")
    for fmt, result in exported.items():
        print(f"export {fmt}: {result['seconds']:.1f} s ({result['quads_per_s']:,.0f} quads/s)")


if __name__ == "__main__":
    main()
