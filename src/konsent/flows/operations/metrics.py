"""The /metrics exposition (U6): the process's counters plus gauges counted in the database
when Prometheus scrapes, so no hot path pays for them. Tenants, accounts and broadcasts are
labelled by id only."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent import metrics
from konsent.flows.context import Konsent
from konsent.flows.operations import heartbeat
from konsent.store.tables import Broadcast, OutboxRow, PrivacyRequest, RetentionRun
from konsent.store.types import utcnow

log = logging.getLogger(__name__)

OPEN_OUTBOX_STATES = ("available", "running")  # finished rows are counted by konsent_sends_total
ACTIVE_BROADCASTS = ("queuing", "sending", "paused")
OPEN_REQUESTS = ("open", "confirming")
DUE_SOON = timedelta(days=7)


class _Process(Collector):
    """The process-wide counters of `konsent.metrics`."""

    def collect(self) -> Iterable[Metric]:
        return metrics.REGISTRY.collect()


class DatabaseGauges(Collector):
    """Gauges counted in the database at scrape time; a failing database gives konsent_database_up 0."""

    def __init__(self, ctx: Konsent) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("konsent_database_up", "1 when the scrape could read the database.")
        try:
            with self.ctx.db.read() as s:
                families = list(_gauges(s, utcnow()))
        except Exception as exc:
            log.warning("metrics: database gauges failed (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _gauges(s: Session, now: datetime) -> Iterator[Metric]:
    outbox = GaugeMetricFamily(
        "konsent_outbox_rows",
        "Outbox rows waiting or in flight, by tenant, account and state.",
        labels=["tenant_id", "account_id", "state"],
    )
    q = (
        select(OutboxRow.tenant_id, OutboxRow.channel_account_id, OutboxRow.state, func.count())
        .where(OutboxRow.state.in_(OPEN_OUTBOX_STATES))
        .group_by(OutboxRow.tenant_id, OutboxRow.channel_account_id, OutboxRow.state)
    )
    for tid, acc, state, n in s.execute(q):
        outbox.add_metric([str(tid), str(acc), state], n)
    yield outbox

    oldest = s.scalar(
        select(func.min(OutboxRow.run_at)).where(OutboxRow.state == "available", OutboxRow.run_at <= now)
    )
    lag = GaugeMetricFamily(
        "konsent_outbox_oldest_due_seconds", "How long the oldest due outbox row has waited (0: none)."
    )
    lag.add_metric([], _age(now, oldest))
    yield lag

    yield from _broadcasts(s)
    yield from _privacy(s, now)

    runs = GaugeMetricFamily(
        "konsent_retention_last_run_timestamp_seconds",
        "When the deletion concept last finished a real run, by tenant (Unix time).",
        labels=["tenant_id"],
    )
    q2 = (
        select(RetentionRun.tenant_id, func.max(RetentionRun.finished_at))
        .where(RetentionRun.dry_run.is_(False), RetentionRun.finished_at.is_not(None))
        .group_by(RetentionRun.tenant_id)
    )
    for tid, at in s.execute(q2):
        runs.add_metric([str(tid)], _ts(at))
    yield runs

    beats = heartbeat.beats(s)
    age = GaugeMetricFamily(
        "konsent_worker_heartbeat_age_seconds",
        "Seconds since each worker's last heartbeat.",
        labels=["worker"],
    )
    for b in beats:
        age.add_metric([b.worker_id], b.age_s(now))
    yield age
    alive = GaugeMetricFamily("konsent_workers_alive", "Workers whose heartbeat is fresh.")
    alive.add_metric([], sum(1 for b in beats if b.fresh(now)))
    yield alive


def _broadcasts(s: Session) -> Iterator[Metric]:
    states = GaugeMetricFamily("konsent_broadcasts", "Broadcasts by state.", labels=["state"])
    for state, n in s.execute(select(Broadcast.state, func.count()).group_by(Broadcast.state)):
        states.add_metric([state], n)
    yield states
    active = list(
        s.execute(
            select(Broadcast.id, Broadcast.tenant_id, Broadcast.audience, Broadcast.queued).where(
                Broadcast.state.in_(ACTIVE_BROADCASTS)
            )
        )
    )
    audience = GaugeMetricFamily(
        "konsent_broadcast_audience",
        "Contacts looked at so far by an active broadcast.",
        labels=["tenant_id", "broadcast_id"],
    )
    queued = GaugeMetricFamily(
        "konsent_broadcast_queued",
        "Messages an active broadcast has queued so far.",
        labels=["tenant_id", "broadcast_id"],
    )
    rows = GaugeMetricFamily(
        "konsent_broadcast_outbox_rows",
        "An active broadcast's outbox rows by state (its progress).",
        labels=["tenant_id", "broadcast_id", "state"],
    )
    tenant_of: dict[int, int] = {}
    for bid, tid, aud, que in active:
        tenant_of[bid] = tid
        audience.add_metric([str(tid), str(bid)], aud)
        queued.add_metric([str(tid), str(bid)], que)
    if tenant_of:
        q = (
            select(OutboxRow.broadcast_id, OutboxRow.state, func.count())
            .where(OutboxRow.broadcast_id.in_(list(tenant_of)))
            .group_by(OutboxRow.broadcast_id, OutboxRow.state)
        )
        for obid, state, n in s.execute(q):
            rows.add_metric([str(tenant_of[obid or 0]), str(obid), state], n)
    yield audience
    yield queued
    yield rows


def _privacy(s: Session, now: datetime) -> Iterator[Metric]:
    fam = GaugeMetricFamily(
        "konsent_privacy_requests_due",
        "Open data-subject requests near or past their one-month deadline (D5), by tenant; "
        "due=overdue or due=7d (within seven days).",
        labels=["tenant_id", "due"],
    )
    counts: dict[tuple[str, str], int] = {}
    q = select(PrivacyRequest.tenant_id, PrivacyRequest.due_at).where(
        PrivacyRequest.state.in_(OPEN_REQUESTS), PrivacyRequest.due_at < now + DUE_SOON
    )
    for rtid, due_at in s.execute(q):  # few rows: only requests close to their deadline
        key = (str(rtid), "overdue" if due_at < now else "7d")
        counts[key] = counts.get(key, 0) + 1
    for (label, due), n in sorted(counts.items()):
        fam.add_metric([label, due], n)
    yield fam


def _ts(at: datetime | None) -> float:
    return at.timestamp() if at is not None else 0.0


def _age(now: datetime, at: datetime | None) -> float:
    return max(0.0, (now - at).total_seconds()) if at is not None else 0.0


def exposition(ctx: Konsent) -> tuple[bytes, str]:
    """The Prometheus text exposition of this process and the database, and its content type."""
    registry = CollectorRegistry(auto_describe=False)  # two registrations, nothing collected yet
    registry.register(_Process())
    registry.register(DatabaseGauges(ctx))
    return generate_latest(registry), CONTENT_TYPE_LATEST
