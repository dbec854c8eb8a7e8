"""Prometheus metrics, one registry per app so several gateways can live in one process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from . import retries
from .errors import BoundgateError


class StateCounts(Protocol):
    """What the state gauges read: the store's documents and jobs per state."""

    async def document_counts(self) -> dict[str, int]: ...

    async def job_counts(self) -> dict[str, int]: ...


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """Prometheus metrics in base units (seconds, joules, grams).

    ``tenant_label`` adds a ``tenant`` label to ``boundgate_requests_total``; it is off by
    default because every tenant then becomes a time series.
    """

    def __init__(self, tenant_label: bool = False) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # drop *_created series
        self.registry = CollectorRegistry()
        self.tenant_label = tenant_label
        r = self.registry
        self.requests = Counter(
            "boundgate_requests",
            "Requests by model, outcome and HTTP status (and tenant, when enabled).",
            ["model", "outcome", "status", *(["tenant"] if tenant_label else [])],
            registry=r,
        )
        self.unledgered_errors = Counter(
            "boundgate_unledgered_errors",
            "Errors answered with no ledger row, so not in boundgate_requests_total: the store "
            "could not be reached to write one (503 store_unavailable, or another error met "
            "during an outage).",
            ["status", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "boundgate_request_duration_seconds",
            "Time from request arrival to the end of the response.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "boundgate_tokens",
            "Tokens the models processed (prompt: input, generated: output); a reused "
            "answer's tokens are replayed, not processed, and not counted.",
            ["model", "direction"],
            registry=r,
        )
        self.energy_j = Counter(
            "boundgate_energy_joules",
            "Energy spent (measured or estimated, central value) and avoided by reuse.",
            ["kind", "method"],
            registry=r,
        )
        self.carbon_g = Counter(
            "boundgate_carbon_grams",
            "Carbon emitted and avoided by reuse, central estimate (gCO2e).",
            ["kind"],
            registry=r,
        )
        self.reuse = Counter(
            "boundgate_reuse",
            "Reuse decisions: hit-exact, hit-semantic, hit-coalesced, hit-variant, miss, bypass, "
            "stale.",
            ["model", "result"],
            registry=r,
        )
        self.reuse_coalesced = Counter(
            "boundgate_reuse_coalesced",
            "Requests that waited for an identical request in flight (request coalescing), "
            "by what followed: served (its stored answer, a hit-coalesced) or alone (it ran "
            "the model itself: the other failed, left or stored nothing, or the wait ran out).",
            ["model", "result"],
            registry=r,
        )
        self.reuse_error_rate = Gauge(
            "boundgate_reuse_error_rate_estimate",
            "Estimated share of semantic lookups served a wrong answer (central estimate).",
            registry=r,
        )
        self.reuse_error_rate_high = Gauge(
            "boundgate_reuse_error_rate_upper_bound",
            "Upper confidence bound of the wrong-reuse share.",
            registry=r,
        )
        self.reuse_error_rate_low = Gauge(
            "boundgate_reuse_error_rate_lower_bound",
            "Lower confidence bound of the wrong-reuse share.",
            registry=r,
        )
        self.reuse_error_bound = Gauge(
            "boundgate_reuse_error_bound", "The configured error bound δ.", registry=r
        )
        self.reuse_threshold = Gauge(
            "boundgate_reuse_similarity_threshold",
            "The threshold the verifier currently applies, on its scorer's score "
            "(pair probability, or cosine).",
            registry=r,
        )
        self.reuse_entries = Gauge(
            "boundgate_reuse_entries", "Answers stored for reuse.", registry=r
        )
        self.routing_requests = Counter(
            "boundgate_routing_requests",
            "Requests routed by model: auto, by task and the model that answered.",
            ["task", "model"],
            registry=r,
        )
        self.routing_escalations = Counter(
            "boundgate_routing_escalations",
            "Auto-routed requests sent on to the next rung, by the rung left and why "
            "(empty, length, refusal, error, context, logprob).",
            ["from_model", "reason"],
            registry=r,
        )
        self.routing_avoided_j = Counter(
            "boundgate_routing_avoided_energy_joules",
            "Energy avoided by right-sizing: the ladder top rung's estimate minus what the "
            "tried rungs spent (estimate).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "boundgate_queue_depth", "Requests waiting for a local model.", ["model"], registry=r
        )
        self.retries = Counter(
            "boundgate_retries",
            "Retries scheduled after a failure, by operation (upstream: a call to an upstream "
            "model, named by model; job_poll: the job runner's poll of the store and the "
            "writes that finish its jobs).",
            ["operation", "model"],
            registry=r,
        )
        # stamina's retries count here, not in prometheus_client's default registry
        retries.install()

    def count_unledgered(self, err: BoundgateError) -> None:
        """Count an error answered with no ledger row (``boundgate_unledgered_errors_total``,
        by its status and code)."""
        self.unledgered_errors.labels(str(err.status_code), err.code or "").inc()

    def retry_counter(self, operation: str, model: str = "") -> Callable[[], None]:
        """What counts one retry of ``operation`` (``upstream`` of ``model``, ``job_poll``)
        in ``boundgate_retries_total``, for ``retries.counting``; its series exists from now
        on, at 0 until a retry."""
        child = self.retries.labels(operation=operation, model=model)
        return lambda: child.inc()

    def track_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model=model).set_function(lambda: float(depth()))

    def track_reuse(self, engine: Any) -> None:
        """Read the reuse layer's live estimates at scrape time."""
        v = engine.verifier
        self.reuse_error_rate.set_function(lambda: v.estimate().error_rate)
        self.reuse_error_rate_high.set_function(lambda: v.estimate().error_high)
        self.reuse_error_rate_low.set_function(lambda: v.estimate().error_low)
        self.reuse_threshold.set_function(lambda: v.threshold)
        self.reuse_error_bound.set(v.delta)
        self.reuse_entries.set_function(lambda: float(len(engine)))

    def track_state(self, store: StateCounts, zone: str, intensity: Callable[[], float]) -> None:
        """Gauges read from the store and the grid at scrape time (the store's counts as of
        the last :meth:`refresh_state_counts`)."""
        self._state_store = store
        self._state_counts: dict[str, dict[str, int]] = {}
        r = self.registry

        def documents() -> dict[str, int]:
            return self._state_counts["documents"]

        def jobs() -> dict[str, int]:
            return self._state_counts["jobs"]

        self.documents = Gauge(
            "boundgate_documents", "Bound documents by state.", ["state"], registry=r
        )
        self.jobs = Gauge("boundgate_jobs", "Deferrable jobs by state.", ["state"], registry=r)
        for state in ("active", "stale", "superseded", "revoked"):
            self.documents.labels(state=state).set_function(_count_of(documents, state))
        for state in ("pending", "running", "done", "failed", "cancelled"):
            self.jobs.labels(state=state).set_function(_count_of(jobs, state))
        self.grid = Gauge(
            "boundgate_grid_intensity_gco2_per_kwh",
            "Grid carbon intensity now for the configured zone (gCO2e/kWh).",
            ["zone"],
            registry=r,
        )
        self.grid.labels(zone=zone).set_function(intensity)

    async def refresh_state_counts(self) -> None:
        """Read the documents and jobs per state the gauges report (before a scrape: gauges
        are read synchronously, the store is async)."""
        self._state_counts = {
            "documents": await self._state_store.document_counts(),
            "jobs": await self._state_store.job_counts(),
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _count_of(counts: Callable[[], dict[str, int]], state: str) -> Callable[[], float]:
    def read() -> float:
        try:
            return float(counts().get(state, 0))
        except Exception:  # store not open yet (scrape during start-up): report nothing
            return 0.0

    return read
