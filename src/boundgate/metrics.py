"""Prometheus metrics, one registry per app so several gateways can live in one process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # drop *_created series
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "boundgate_requests",
            "Requests by model, outcome and HTTP status.",
            ["model", "outcome", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "boundgate_request_latency_seconds",
            "Time from request arrival to the end of the response.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "boundgate_tokens", "Tokens processed.", ["model", "kind"], registry=r
        )
        self.energy_wh = Counter(
            "boundgate_energy_wh",
            "Energy used, central estimate (Wh).",
            ["model", "method"],
            registry=r,
        )
        self.carbon_g = Counter(
            "boundgate_carbon_grams",
            "Carbon emitted, central estimate (gCO2e).",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "boundgate_queue_depth", "Requests waiting for a local model.", ["model"], registry=r
        )

    def track_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model=model).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
