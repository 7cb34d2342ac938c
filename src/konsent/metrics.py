"""Process-wide Prometheus counters of the hot paths (U6).

Only increments and observations happen here, never a database query: the
webhook and send paths are benchmarked. Gauges that need the database are
computed when /metrics is scraped (`flows.operations.metrics`). Labels are
channel kinds, outcomes and ids, never anything personal.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

WEBHOOKS_RECEIVED = Counter(
    "konsent_webhooks_received",
    "Provider webhook deliveries accepted (signature verified), by channel kind.",
    ["kind"],
    registry=REGISTRY,
)
WEBHOOKS_REJECTED = Counter(
    "konsent_webhooks_rejected",
    "Provider webhook deliveries refused, by channel kind and reason (signature, handshake, malformed, "
    "unknown_route).",
    ["kind", "reason"],
    registry=REGISTRY,
)
SENDS = Counter(
    "konsent_sends",
    "Messages handed to a provider, by channel kind and outcome (sent, retry_after, transient, ...).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "konsent_provider_latency_seconds",
    "Time a provider took to answer a send, by channel kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
PACING_WAIT = Histogram(
    "konsent_pacing_wait_seconds",
    "Waits for a channel account's send slot (provider throughput, Retry-After), by channel kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0),
    registry=REGISTRY,
)
RETENTION_RUNS = Counter(
    "konsent_retention_runs",
    "Scheduled passes of the deletion concept started by this process's worker, by outcome (ok, failed).",
    ["outcome"],
    registry=REGISTRY,
)
HEARTBEATS = Counter(
    "konsent_worker_heartbeats",
    "Heartbeats this process's delivery worker recorded.",
    registry=REGISTRY,
)

# Label children looked up once per label set: on the hot paths an update is a dict hit and an add
# (prometheus-client's own `.labels()` costs a few microseconds per call).
_received: dict[str, Counter] = {}
_sends: dict[tuple[str, str], Counter] = {}
_latency: dict[str, Histogram] = {}


def webhook_received(kind: str) -> None:
    """Count one accepted provider delivery."""
    child = _received.get(kind)
    if child is None:
        child = _received[kind] = WEBHOOKS_RECEIVED.labels(kind)
    child.inc()


def webhook_rejected(kind: str, reason: str) -> None:
    """Count one refused provider delivery."""
    WEBHOOKS_REJECTED.labels(kind, reason).inc()


def send_finished(kind: str, outcome: str, latency_s: float | None) -> None:
    """Count one send by outcome; observe the provider's answer time when it answered."""
    child = _sends.get((kind, outcome))
    if child is None:
        child = _sends[(kind, outcome)] = SENDS.labels(kind, outcome)
    child.inc()
    if latency_s is not None:
        hist = _latency.get(kind)
        if hist is None:
            hist = _latency[kind] = PROVIDER_LATENCY.labels(kind)
        hist.observe(latency_s)
