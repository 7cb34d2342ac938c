"""Worker heartbeats: each delivery worker says it is alive every few seconds (U6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from konsent import metrics
from konsent.flows.context import Konsent
from konsent.store.tables import WorkerHeartbeat

BEAT_EVERY_S = 10.0
STALE_AFTER = timedelta(seconds=60)  # six missed beats: the worker is stopped or stuck
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Beat:
    worker_id: str
    started_at: datetime
    beat_at: datetime

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.beat_at).total_seconds())

    def fresh(self, now: datetime) -> bool:
        return now - self.beat_at <= STALE_AFTER


def beat(ctx: Konsent, worker_id: str, started_at: datetime, now: datetime) -> None:
    """Record that `worker_id` is alive now; forget workers silent for a day."""
    with ctx.db.write() as s:
        done = s.execute(
            update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id).values(beat_at=now)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            s.add(WorkerHeartbeat(worker_id=worker_id[:120], started_at=started_at, beat_at=now))
        s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER))
    metrics.HEARTBEATS.inc()


def forget(ctx: Konsent, worker_id: str) -> None:
    """A worker that stops cleanly takes its heartbeat with it."""
    with ctx.db.write() as s:
        s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))


def beats(s: Session) -> list[Beat]:
    rows = s.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.worker_id)).all()
    return [Beat(r.worker_id, r.started_at, r.beat_at) for r in rows]
