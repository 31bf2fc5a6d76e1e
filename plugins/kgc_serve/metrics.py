"""Counters of ``/metrics`` (Prometheus text format): requests, latency, queue depth, parse failures."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """One server's counters, in their own registry."""

    def __init__(self, queue_depth: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.requests = Counter("kgc_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("kgc_request_seconds", "Time to answer a request", ["route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.refused = Counter("kgc_refused", "Requests refused because the work queue was full",
                               registry=self.registry)
        self.texts = Counter("kgc_texts_extracted", "Texts extracted (per task)", registry=self.registry)
        self.parse_failures = Counter("kgc_parse_failures", "Model answers that could not be parsed",
                                      registry=self.registry)
        Gauge("kgc_queue_depth", "Jobs waiting or running", registry=self.registry).set_function(queue_depth)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
