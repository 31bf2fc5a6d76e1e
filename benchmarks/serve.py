"""``kgc serve`` under load: concurrent clients against the real default model on 127.0.0.1.

    python benchmarks/serve.py --clients 8 --requests 4 --queue 4

Each client sends ``--requests`` extraction requests one after another (one CoNLL-2003 test sentence
each, NER, added to the graph), all clients at once. Every request must come back exactly once, answered
(200) or refused (503 with Retry-After, when the queue is full); afterwards the graph must hold exactly
the sentences that were answered. Latency of the answered requests and texts/s are set beside the answered
sentences extracted in-process by ``kgcore.Extractor`` on the same model, one at a time, in this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import CONLL, machine  # noqa: E402
from servers import KgcServer  # noqa: E402

LABELS = ["person", "location", "organization", "miscellaneous"]


def sentences(n: int) -> list[str]:
    rows = (json.loads(line) for line in (CONLL / "test.json").read_text(encoding="utf-8").splitlines())
    texts = list(dict.fromkeys(r["text"] for r in rows if len(r["text"]) > 40))
    return texts[:n]


def in_process(texts: list[str]) -> float:
    from kgcore import Extractor

    with Extractor("NER", labels=LABELS, batch_size=1) as extract:
        extract(texts[0])  # warm up
        start = time.perf_counter()
        for text in texts:
            extract(text)
        return time.perf_counter() - start


def load(texts: list[str], clients: int, queue: int) -> dict:
    per_client = len(texts) // clients
    answers: list[tuple[str, int, float, str]] = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp, KgcServer(Path(tmp) / "kg", "--queue", str(queue)) as server:
        server.post("/api/extract", {"text": "Warm up.", "tasks": [{"task": "NER", "labels": LABELS}]})

        def client(mine: list[str]) -> None:
            for text in mine:
                start = time.perf_counter()
                status, headers, body = server.request("POST", "/api/extract", json.dumps(
                    {"text": text, "tasks": [{"task": "NER", "labels": LABELS}], "ingest": True}).encode(),
                    {"Content-Type": "application/json"}, timeout=600)
                with lock:
                    answers.append((text, status, time.perf_counter() - start,
                                    {k.lower(): v for k, v in headers.items()}.get("retry-after", "")))

        threads = [threading.Thread(target=client, args=(texts[i * per_client:(i + 1) * per_client],))
                   for i in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        stored = server.get("/api/graph/stats")[1]["documents"]
        metrics = server.get("/metrics")[1]
    sent = [t for t in texts[:per_client * clients]]
    answered = [a for a in answers if a[1] == 200]
    refused = [a for a in answers if a[1] == 503]
    assert sorted(a[0] for a in answers) == sorted(sent), "a request was lost or answered twice"
    assert len(answered) + len(refused) == len(answers), {a[1] for a in answers}
    assert all(int(a[3]) >= 1 for a in refused), "a 503 without Retry-After"
    assert stored == len({a[0] for a in answered}), (stored, len(answered))
    latencies = sorted(1000 * a[2] for a in answered)
    return {"sent": len(sent), "answered": len(answered), "refused": len(refused), "wall_s": wall,
            "p50_ms": statistics.median(latencies), "p95_ms": statistics.quantiles(latencies, n=20)[18],
            "texts_per_s": len(answered) / wall, "stored": stored,
            "queue_metric": "kgc_queue_depth" in metrics, "texts": [a[0] for a in answered]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="Requests per client.")
    parser.add_argument("--queue", type=int, default=4)
    args = parser.parse_args()
    texts = sentences(args.clients * args.requests)
    result = load(texts, args.clients, args.queue)
    direct_rate = result["answered"] / in_process(result["texts"])
    print(f"## kgc serve under load ({machine()})")
    print(f"{args.clients} clients x {args.requests} requests (one sentence, NER, ingest), queue {args.queue}: "
          f"{result['answered']} answered, {result['refused']} refused with 503, none lost or doubled; "
          f"graph holds {result['stored']} documents")
    print("| | p50 ms | p95 ms | texts/s |\n|---|---:|---:|---:|")
    print(f"| kgc serve, answered requests | {result['p50_ms']:.0f} | {result['p95_ms']:.0f} | "
          f"{result['texts_per_s']:.2f} |")
    print(f"| kgcore.Extractor in-process, one at a time | | | {direct_rate:.2f} |")
    print(f"\nserver texts/s / in-process texts/s = **{result['texts_per_s'] / direct_rate:.2f}**")


if __name__ == "__main__":
    main()
