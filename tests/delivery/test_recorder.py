"""The worker's group commit (`delivery/recorder.py`; on PostgreSQL `delivery/record_pg.py`) keeps
the outbox rules (#14, M3, invariant 8): only the current claim is marked "about to send" and
completed, a row locked elsewhere is never waited for, and statuses that overtook a send are
applied when it is recorded. Each runs on SQLite and PostgreSQL unless it says otherwise."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from konsent.channels.base import SendOutcome, SendResult
from konsent.delivery import outbox
from konsent.delivery.recorder import Recorder
from konsent.store.tables import EarlyStatus, Message, OutboxRow
from konsent.store.types import utcnow
from tests.conftest import drain, on_postgres
from tests.flows.support import contact_of, enqueue
from tests.helpers import subscribe

PHONE = "+4915112345679"


@pytest.fixture
def queued(ctx, demo) -> int:
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    return enqueue(ctx, contact_of(ctx, PHONE).id, "newsletter:angebote", "20 % auf alles")


def _row(ctx, message_id: int) -> OutboxRow:
    with ctx.db.read() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.message_id == message_id)).one()
        s.expunge(row)
        return row


def _message(ctx, message_id: int) -> Message:
    with ctx.db.read() as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        s.expunge(msg)
        return msg


def _commit(rec: Recorder, results) -> None:  # type: ignore[no-untyped-def]
    rec.record(results)
    assert asyncio.run(rec.flush())


def test_only_the_current_claim_is_marked_and_a_taken_over_workers_late_send_changes_nothing(ctx, queued):
    start = utcnow()
    [stale] = outbox.claim(ctx, "worker-a", 10, start, lease_s=30)
    later = start + timedelta(seconds=31)
    assert outbox.rescue(ctx, later) == 1
    [current] = outbox.claim(ctx, "worker-b", 10, later, lease_s=30)
    rec = Recorder(ctx, lease_s=30)
    try:

        async def marks() -> tuple[bool, bool]:
            return await rec.mark(stale), await rec.mark(current)

        assert asyncio.run(marks()) == (False, True)  # the stale claim must not go on the wire
        assert _row(ctx, queued).sending_at is not None
        _commit(rec, [(stale, SendResult(SendOutcome.SENT, provider_id="late.a"))])
        row, msg = _row(ctx, queued), _message(ctx, queued)
        assert (row.state, row.attempt, msg.provider_id, msg.status) == ("running", 2, None, "queued")
        _commit(rec, [(current, SendResult(SendOutcome.SENT, provider_id="b.1"))])
        row, msg = _row(ctx, queued), _message(ctx, queued)
        assert (row.state, msg.provider_id, msg.status) == ("done", "b.1", "sent")
    finally:
        rec.close()


def test_a_status_that_overtook_the_send_is_applied_when_the_send_is_recorded(ctx, queued):
    [job] = outbox.claim(ctx, "worker-a", 10, utcnow(), lease_s=30)
    with ctx.db.write() as s:
        s.add(
            EarlyStatus(
                tenant_id=job.tenant_id,
                channel_account_id=job.account.id,
                provider_id="p.early",
                status="read",
                reason="",
                at=utcnow(),
            )
        )
    rec = Recorder(ctx, lease_s=30)
    try:
        assert asyncio.run(rec.mark(job))
        _commit(rec, [(job, SendResult(SendOutcome.SENT, provider_id="p.early"))])
    finally:
        rec.close()
    assert (_message(ctx, queued).status, _row(ctx, queued).state) == ("read", "done")
    with ctx.db.read() as s:
        assert s.scalars(select(EarlyStatus)).all() == []


@pytest.mark.skipif(not on_postgres(), reason="row locks: PostgreSQL")
def test_a_row_locked_elsewhere_is_not_marked_and_not_waited_for(ctx, queued):
    """A withdrawal holding the outbox row waits for a send guard, which waits for this commit:
    the mark must skip the row (the request is not sent), not wait for it."""
    [job] = outbox.claim(ctx, "worker-a", 10, utcnow(), lease_s=30)
    rec = Recorder(ctx, lease_s=30)
    with ctx.db.engine.connect() as other:
        other.execute(text("SELECT id FROM outbox WHERE id = :i FOR UPDATE"), {"i": job.outbox_id})
        try:
            t0 = time.monotonic()
            assert asyncio.run(asyncio.wait_for(rec.mark(job), 10)) is False
            assert time.monotonic() - t0 < 5
        finally:
            other.rollback()
            rec.close()
    assert _row(ctx, queued).sending_at is None
