"""``kgc serve``: the HTTP API against a real server (the real default model, a real embedded graph) on
127.0.0.1: extraction, the graph, exports, SPARQL, metrics; then limits, tokens, faults and kill -9."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from servers import KgcServer

pytest.importorskip("fastapi")

TEXT = "Ada Lovelace worked with Charles Babbage in London."
TASKS = [{"task": "NER", "labels": ["person", "location"]}, {"task": "RE", "labels": ["work with", "live in"]}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with KgcServer(tmp_path_factory.mktemp("serve") / "kg") as running:
        yield running


@pytest.fixture(scope="module")
def extracted(server):
    """One extraction with two tasks, added to the graph."""
    status, body = server.post("/api/extract", {"text": TEXT, "tasks": TASKS, "ingest": True})
    assert status == 200, body
    return body


def test_extract_answers_what_the_python_api_answers(extracted):
    from kgcore import Extractor

    [doc] = extracted["documents"]
    assert doc["text"] == TEXT and set(doc["results"]) == {"NER", "RE"}
    for spec in TASKS:
        with Extractor(spec["task"], labels=spec["labels"]) as extract:
            expected = extract(TEXT).as_dict(with_raw=True)
        got = doc["results"][spec["task"]]
        assert {k: got[k] for k in ("result", "triples", "spans", "raw")} == {
            k: expected[k] for k in ("result", "triples", "spans", "raw")}
        for span in got["spans"]:
            assert TEXT[span["start"]:span["end"]] == span["text"]
    assert extracted["ingested"] == {"added": 1, "replaced": 0, "unchanged": 0}
    assert extracted["provenance"]["backend"] == "llamacpp"


def test_graph_endpoints_show_what_was_ingested(server, extracted):
    status, stats = server.get("/api/graph/stats")
    assert status == 200 and stats["documents"] == 1
    names = {n for n, label in _mentions(extracted) if label == "person"}
    assert names, "the model found no person in the sample (the checks below need one)"
    name = sorted(names)[0]
    status, found = server.get(f"/api/graph/search?q={_q(name)}")
    assert status == 200 and any(hit["label"] == name for hit in found)
    iri = next(hit["entity"] for hit in found if hit["label"] == name)
    status, view = server.get(f"/api/graph/entity?iri={_q(iri)}")
    assert status == 200 and view["label"] == name and view["documents"] == 1
    assert view["mentions"][0]["sentence"]["text"] == TEXT
    status, drawn = server.get(f"/api/graph/subgraph?iri={_q(iri)}")
    assert status == 200 and iri in {node["id"] for node in drawn["nodes"]}
    assert all(iri in (edge["source"], edge["target"]) for edge in drawn["edges"])
    status, whole = server.get("/api/graph/subgraph")
    assert status == 200 and len(whole["edges"]) == stats["relations"]


def test_every_export_format(server, extracted):
    import rdflib

    status, info = server.get("/api/info")
    formats = [f["name"] for f in info["formats"]]
    assert {"ttl", "graphml", "csv", "neo4j-csv"} <= set(formats)
    for fmt in formats:
        status, headers, body = server.request("GET", f"/api/graph/export?format={fmt}")
        assert status == 200 and body, fmt
        disposition = {k.lower(): v for k, v in headers.items()}["content-disposition"]
        assert "attachment" in disposition and "kgc-graph" in disposition
        if fmt in ("csv", "neo4j-csv"):
            assert zipfile.ZipFile(io.BytesIO(body)).namelist()
    _, _, turtle = server.request("GET", "/api/graph/export?format=ttl")
    graph = rdflib.Graph().parse(data=turtle.decode("utf-8"), format="turtle")
    status, count = server.get("/sparql?query=" + _q("SELECT (COUNT(*) AS ?n) WHERE { SELECT DISTINCT ?s ?p ?o "
                                                      "WHERE { ?s ?p ?o } }"),
                               headers={"Accept": "application/sparql-results+json"})
    assert len(graph) == int(count["results"]["bindings"][0]["n"]["value"])
    status, body = server.get("/api/graph/export?format=nonsense")
    assert status == 422 and body["error"].startswith("query.format: Input should be") and "'ttl'" in body["error"]


def test_sparql_protocol(server, extracted):
    query = "SELECT ?g WHERE { GRAPH ?g { ?g a kgc:Document } }"
    status, body = server.get("/sparql?query=" + _q(query))
    assert status == 200 and len(body["results"]["bindings"]) == 1
    status, headers, csv = server.request("POST", "/sparql", query.encode(),
                                          {"Content-Type": "application/sparql-query", "Accept": "text/csv"})
    assert status == 200 and csv.decode().splitlines()[0] == "g" and len(csv.decode().splitlines()) == 2
    status, headers, raw = server.request("POST", "/sparql", f"query={_q('ASK { ?s ?p ?o }')}".encode(),
                                          {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and json.loads(raw)["boolean"] is True
    status, headers, turtle = server.request("GET", "/sparql?query=" + _q("CONSTRUCT WHERE { ?s a kgc:Entity }"),
                                             headers={"Accept": "text/turtle"})
    assert status == 200 and "Entity" in turtle.decode()
    status, body = server.get("/sparql?query=" + _q("SELECT ?s WHERE { ?s"))
    assert status == 400 and body["error"].startswith("SPARQL syntax error") and "\n" not in body["error"]
    status, body = _raw_post(server, "/sparql", b"DROP ALL", "application/sparql-update")
    assert status == 403 and "--allow-update" in body["error"]
    assert server.get("/api/graph/stats")[1]["documents"] == 1  # nothing was dropped


def test_metrics_count_requests_queue_and_parse_failures(server, extracted):
    status, text = server.get("/metrics")
    assert status == 200
    lines = text.splitlines()
    assert any(line.startswith('kgc_requests_total{method="POST",route="/api/extract",status="200"}')
               for line in lines)
    assert "kgc_queue_depth 0.0" in lines
    assert f"kgc_parse_failures_total {float(extracted['parse_failures'])}" in lines
    assert any(line.startswith("kgc_request_seconds_bucket") for line in lines)


def test_bad_requests_get_clear_json_errors_and_the_server_keeps_serving(server):
    cases = [
        (b'{"text": "x", "tasks": [', "application/json", 400, "not valid JSON"),
        (b'{"text": 5, "tasks": []}', "application/json", 422, "text"),
        (b'{"text": "x", "tasks": [{"task": "NER"}]}', "application/json", 422, "tasks.0.labels: Field required"),
        (b'{"text": [], "tasks": [{"task": "NER", "labels": ["a"]}]}', "application/json", 422, "text"),
        (b'{"text": "\xff\xfe bad", "tasks": [{"task": "NER", "labels": ["a"]}]}', "application/json", 400, None),
        (json.dumps({"text": "x", "tasks": [{"task": "NOPE", "labels": ["a"]}]}).encode(), "application/json", 422,
         "tasks.0.task: Input should be"),
        (json.dumps({"text": "   ", "tasks": [{"task": "NER", "labels": ["a"]}]}).encode(), "application/json", 422,
         "text"),
    ]
    for body, kind, expected, words in cases:
        status, answer = _raw_post(server, "/api/extract", body, kind)
        assert status == expected, (body, answer)
        assert set(answer) == {"error"} and "Traceback" not in answer["error"]
        assert words is None or words in answer["error"], (body, answer)
    for path, expected in [("/nowhere", 404), ("/../../etc/passwd", 404), ("/static/../../../etc/passwd", 404),
                           ("/api/graph/entity?iri=../../etc/passwd", 422),
                           ("/api/graph/export?format=../../etc/passwd", 422),
                           ("/api/graph/entity?iri=urn:kgc:entity:" + "0" * 24, 404)]:
        status, answer = server.get(path)
        assert status == expected, (path, answer)
        assert "root:" not in json.dumps(answer)
    assert server.get("/healthz")[0] == 200


def test_limits_answer_413(tmp_path):
    with KgcServer(tmp_path / "kg", "--max-body-bytes", "2000", "--max-text-chars", "100", "--max-texts", "2") as s:
        big = json.dumps({"text": "x" * 5000, "tasks": TASKS}).encode()
        status, answer = _raw_post(s, "/api/extract", big, "application/json")
        assert status == 413 and "2,000 bytes" in answer["error"]
        assert _chunked_post(s, "/api/extract", [big[:1500], big[1500:]])[0] == 413
        status, answer = s.post("/api/extract", {"text": "y" * 101, "tasks": TASKS})
        assert status == 413 and "text 0 has 101 characters" in answer["error"]
        status, answer = s.post("/api/extract", {"text": ["a b", "c d", "e f"], "tasks": TASKS})
        assert status == 413 and "3 texts" in answer["error"]
        assert s.get("/healthz")[0] == 200


def test_token_guards_the_api(tmp_path):
    with KgcServer(tmp_path / "kg", token="s3cret") as s:
        for path in ("/api/info", "/api/graph/stats", "/metrics", "/sparql?query=" + _q("ASK {}")):
            assert s.get(path, headers={"Authorization": "Bearer wrong"})[0] == 401, path
            status, headers, body = s.request("GET", path, headers={"Authorization": ""})
            assert status == 401 and headers.get("www-authenticate", headers.get("WWW-Authenticate")) == "Bearer"
            assert s.get(path)[0] == 200, path
        assert s.get("/healthz", headers={"Authorization": ""})[0] == 200
        assert s.request("GET", "/", headers={"Authorization": ""})[0] == 200  # the page asks for the token


def test_non_loopback_host_needs_a_token(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kgcore.cli", "serve", "--store", str(tmp_path / "kg"), "--host",
                           "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--token" in done.stderr and not (tmp_path / "kg").exists()


def test_updates_only_when_allowed(tmp_path):
    with KgcServer(tmp_path / "kg", "--allow-update") as s:
        insert = "INSERT DATA { GRAPH <urn:x:g> { <urn:x:a> <urn:x:b> 'c' } }"
        assert _raw_post(s, "/sparql", insert.encode(), "application/sparql-update")[0] == 204
        status, body = s.get("/sparql?query=" + _q("SELECT ?o WHERE { <urn:x:a> <urn:x:b> ?o }"))
        assert [b["o"]["value"] for b in body["results"]["bindings"]] == ["c"]


def test_a_full_queue_answers_503_and_loses_nothing(tmp_path):
    texts = [f"Grace Hopper met Alan Turing in Boston on day {i}." for i in range(3)]
    with KgcServer(tmp_path / "kg", "--queue", "1") as s:
        answers: list[tuple[int, dict]] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            status, headers, body = s.request("POST", "/api/extract", json.dumps(
                {"text": texts, "tasks": TASKS[:1], "ingest": True, "language": "en"}).encode(),
                {"Content-Type": "application/json"})
            with lock:
                answers.append((status, headers, json.loads(body)))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
            time.sleep(0.2)
        for thread in threads:
            thread.join(600)
        statuses = sorted(status for status, _, _ in answers)
        assert len(answers) == 4 and statuses[0] == 200 and 503 in statuses and set(statuses) <= {200, 503}
        for status, headers, body in answers:
            if status == 503:
                assert int({k.lower(): v for k, v in headers.items()}["retry-after"]) >= 1
                assert "busy" in body["error"]
        ok = [body for status, _, body in answers if status == 200]
        # the first request added the texts, later ones found them unchanged: nothing twice
        assert ok[0]["ingested"]["added"] == 3 and all(b["ingested"]["added"] == 0 for b in ok[1:])
        assert s.get("/api/graph/stats")[1]["documents"] == 3
        status, text = s.get("/metrics")
        refused = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("kgc_refused_total"))
        assert refused == statuses.count(503)


def test_clients_that_go_away_and_a_backend_that_fails(tmp_path):
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        gone = dead.getsockname()[1]  # nothing listens here once closed
    with KgcServer(tmp_path / "kg", "--backend", "openai", "-O", f"base_url=http://127.0.0.1:{gone}/v1",
                   "-O", "model=none", "-O", "max_retries=0") as s:
        status, body = s.post("/api/extract", {"text": TEXT, "tasks": TASKS[:1]})
        assert status == 502 and body["error"].startswith("the backend failed")
        for payload in (b"POST /api/extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 500\r\n\r\n{\"text\": ",  # disconnects mid-body
                        b"GET /api/graph/stats HTTP/1.1\r\nHost: x\r\n"):  # mid-headers
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as client:
                client.sendall(payload)
        assert s.get("/healthz")[0] == 200 and s.get("/api/graph/stats")[0] == 200


def test_kill_9_during_ingest_leaves_a_store_that_reopens_consistent(tmp_path):
    from kgc_graph import Graph

    store = tmp_path / "kg"
    server = KgcServer(store)
    with server:
        answered = []

        def feed() -> None:
            for i in range(20):
                texts = [f"Report {i}-{j}: Ada Lovelace lives in London." for j in range(4)]
                try:
                    status, body = server.post("/api/extract", {"text": texts, "tasks": TASKS[:1], "ingest": True},
                                               timeout=120)
                except (OSError, http.client.HTTPException):  # the server was killed
                    return
                if status != 200:
                    return
                answered.append(body)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        deadline = time.monotonic() + 300
        while not answered and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answered, server.output()
        time.sleep(1.5)  # the next request is extracting or writing
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        feeder.join(130)
    with Graph.open(str(store)) as graph:  # a writer undoes what a dead one left half-done
        assert graph.check() == []
        documents = graph.stats()["documents"]
    assert 4 * len(answered) <= documents <= 4 * (len(answered) + 1)


def _mentions(extracted: dict) -> set[tuple[str, str]]:
    return {(s["text"], s["label"]) for doc in extracted["documents"] for s in doc["results"]["NER"]["spans"]}


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _raw_post(server: KgcServer, path: str, body: bytes, kind: str) -> tuple[int, dict]:
    status, headers, raw = server.request("POST", path, body, {"Content-Type": kind})
    return status, (json.loads(raw) if raw else {})


def _chunked_post(server: KgcServer, path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    """A POST whose body comes in chunks, with no Content-Length."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as client:
        client.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
        for chunk in chunks:
            client.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        client.sendall(b"0\r\n\r\n")
        reply = b""
        while data := client.recv(65536):
            reply += data
    head = reply.split(b"\r\n", 1)[0].split()
    return int(head[1]), reply
