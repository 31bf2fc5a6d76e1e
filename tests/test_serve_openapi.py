"""Property-based tests of ``kgc serve`` generated from its OpenAPI description (schemathesis): whatever
the request, valid or not, the server answers as its description says, never with a server error."""

from __future__ import annotations

import pytest

from servers import KgcServer

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # small limits keep each generated extraction short on the real model
    with KgcServer(tmp_path_factory.mktemp("openapi") / "kg", "--max-text-chars", "300", "--max-texts", "2",
                   "--max-new-tokens", "48", "--queue", "64") as running:
        status, _ = running.post("/api/extract", {"text": "Ada Lovelace met Charles Babbage in London.",
                                                  "tasks": [{"task": "NER", "labels": ["person", "location"]}],
                                                  "ingest": True})
        assert status == 200
        yield running


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_every_endpoint_answers_as_described(api_schema, server):
    """Every described status, content type and body schema holds, and nothing is a server error. Some
    requests that fit the JSON Schema are still wrong (a query that is not SPARQL, a decision about an entity
    the graph lacks, a label the backend's grammar cannot hold): a 4xx with a clear message is right for them,
    so schemathesis' positive_data_acceptance check is off."""
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/extract", "GET /api/graph/entity", "GET /sparql"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_described(case):
            response = case.call_and_validate(base_url=server.url, timeout=120,
                                              excluded_checks=[positive_data_acceptance])
            assert response.status_code < 500, response.text

        answers_as_described()
