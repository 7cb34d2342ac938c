"""Live inbox updates: an event row per change, and an in-process wake-up (M1).

Every change to a conversation appends an `InboxEvent` in the same transaction, so a
page connected to any web process finds it by polling. After the commit, waiting
streams of this process are woken at once through `HUB`, so the poll interval only
matters for changes made by another process (a separate worker or web node).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, insert, inspect, select
from sqlalchemy.orm import Session

from konsent.store.tables import InboxEvent, Message
from konsent.store.types import utcnow

_PENDING = "konsent_live_tenants"


class LiveHub:
    """Wakes the asyncio streams waiting for a tenant; safe to call from any thread."""

    def __init__(self) -> None:
        self._subs: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, tenant_id: int) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        sub = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._subs.setdefault(tenant_id, set()).add(sub)
        return sub

    def unsubscribe(self, tenant_id: int, sub: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._subs.get(tenant_id, set()).discard(sub)

    def publish(self, tenant_id: int) -> None:
        with self._lock:
            subs = list(self._subs.get(tenant_id, ()))
        for loop, ev in subs:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop has closed
                self.unsubscribe(tenant_id, (loop, ev))


HUB = LiveHub()


def record(s: Session, tenant_id: int, conversation_id: int, kind: str) -> None:
    """Note a change for live pages; they are woken when the transaction commits."""
    s.add(InboxEvent(tenant_id=tenant_id, conversation_id=conversation_id, kind=kind, created_at=utcnow()))
    s.info.setdefault(_PENDING, set()).add(tenant_id)


KEEP = timedelta(hours=1)  # live events only bridge reconnects; older ones are pruned


def maybe_prune(s: Session, tenant_id: int) -> int:
    """Now and then (about one inbound message in 200) delete a tenant's live events older than KEEP."""
    if secrets.randbelow(200):
        return 0
    return prune(s, tenant_id, utcnow() - KEEP)


def prune(s: Session, tenant_id: int, before: datetime) -> int:
    res = s.execute(
        delete(InboxEvent).where(InboxEvent.tenant_id == tenant_id, InboxEvent.created_at < before),
        execution_options={"synchronize_session": False},
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def events_after(s: Session, tenant_id: int, after_id: int, limit: int = 200) -> list[InboxEvent]:
    return list(
        s.scalars(
            select(InboxEvent)
            .where(InboxEvent.tenant_id == tenant_id, InboxEvent.id > after_id)
            .order_by(InboxEvent.id)
            .limit(limit)
        ).all()
    )


def last_event_id(s: Session, tenant_id: int) -> int:
    from sqlalchemy import func

    return int(
        s.scalar(select(func.coalesce(func.max(InboxEvent.id), 0)).where(InboxEvent.tenant_id == tenant_id))
        or 0
    )


# Messages are written by several flows (inbound, replies, bot, delivery status); one listener
# turns each into a live event so no path can forget it.
@event.listens_for(Message, "after_insert")
def _message_inserted(_mapper: Any, connection: Any, target: Message) -> None:
    if target.conversation_id is None:
        return
    connection.execute(
        insert(InboxEvent).values(
            tenant_id=target.tenant_id,
            conversation_id=target.conversation_id,
            kind=f"message_{target.direction}",
            created_at=utcnow(),
        )
    )
    sess = inspect(target).session
    if sess is not None:
        sess.info.setdefault(_PENDING, set()).add(target.tenant_id)


@event.listens_for(Message, "after_update")
def _message_updated(_mapper: Any, connection: Any, target: Message) -> None:
    if target.conversation_id is None or not inspect(target).attrs.status.history.has_changes():
        return
    connection.execute(
        insert(InboxEvent).values(
            tenant_id=target.tenant_id,
            conversation_id=target.conversation_id,
            kind="status",
            created_at=utcnow(),
        )
    )
    sess = inspect(target).session
    if sess is not None:
        sess.info.setdefault(_PENDING, set()).add(target.tenant_id)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for tenant_id in session.info.pop(_PENDING, ()):
        HUB.publish(tenant_id)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
