"""Outbox rules that nothing else pins (#11 item 7): the fence on completion, the discard after
`KONSENT_MAX_ATTEMPTS` with its reason, and the legal-basis check inside `enqueue_many`.
Each runs on SQLite and PostgreSQL; each fails when its rule is removed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.channels.base import OutboundContent, SendOutcome, SendResult
from konsent.delivery import outbox
from konsent.flows.outbound import messaging
from konsent.store.tables import Contact, Message, OutboxRow
from konsent.store.types import utcnow
from tests.conftest import drain
from tests.flows.support import contact_of, enqueue, message_status
from tests.helpers import sim_account, subscribe

PHONE = "+4915112345678"
OFFERS = "newsletter:angebote"


def _row(ctx, message_id: int) -> OutboxRow:
    with ctx.db.read() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.message_id == message_id)).one()
        s.expunge(row)
        return row


@pytest.fixture
def queued(ctx, demo) -> int:
    """A subscribed contact with one newsletter in the outbox; returns its message id."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)  # the confirmation goes out; the queue is empty again
    return enqueue(ctx, contact_of(ctx, PHONE).id, OFFERS, "20 % auf alles")


def _take_over(ctx, stale_now):  # type: ignore[no-untyped-def]
    """Worker A claims, its lease expires, the rescuer returns the row, worker B claims it again."""
    [stale] = outbox.claim(ctx, "worker-a", 10, stale_now, lease_s=30)
    later = stale_now + timedelta(seconds=31)
    assert outbox.rescue(ctx, later) == 1
    [current] = outbox.claim(ctx, "worker-b", 10, later, lease_s=30)
    assert (stale.outbox_id, stale.attempt, current.attempt) == (current.outbox_id, 1, 2)
    return stale, current, later


@pytest.mark.parametrize(
    "late",
    [
        SendResult(SendOutcome.SENT, provider_id="late.sent"),  # the bulk path of successful sends
        SendResult(SendOutcome.PERMANENT, error_code="late", error_text="rejected"),  # the one-by-one path
    ],
    ids=["sent", "failed"],
)
def test_a_stale_workers_late_completion_leaves_the_newer_attempt_running(ctx, queued, late):
    """Fence (DESIGN.md): completion matches (id, attempt); a taken-over worker cannot overwrite."""
    stale, current, later = _take_over(ctx, utcnow())
    outbox.complete(ctx, [(stale, late)], later + timedelta(seconds=1))
    row = _row(ctx, queued)
    assert (row.state, row.attempt, row.locked_by) == ("running", 2, "worker-b")
    with ctx.db.read() as s:
        msg = s.get(Message, queued)
        assert msg is not None and msg.provider_id is None and msg.status == "queued"
    outbox.complete(ctx, [(current, SendResult(SendOutcome.SENT, provider_id="b.1"))], later)
    assert _row(ctx, queued).state == "done"
    with ctx.db.read() as s:
        msg = s.get(Message, queued)
        assert msg is not None and (msg.provider_id, msg.status) == ("b.1", "sent")


def test_transient_failures_are_retried_until_max_attempts_then_discarded_with_the_reason(
    ctx, settings, demo
):
    """KONSENT_MAX_ATTEMPTS=3: attempts 1 and 2 go back with backoff, the 3rd is discarded with why."""
    settings.max_attempts = 3
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    mid = enqueue(ctx, contact_of(ctx, PHONE).id, OFFERS, "20 % auf alles")
    assert _row(ctx, mid).max_attempts == 3
    now = utcnow()
    failure = SendResult(SendOutcome.TRANSIENT, error_code="503", error_text="provider down")
    for attempt in (1, 2):
        [job] = outbox.claim(ctx, "w", 10, now, lease_s=30)
        assert job.attempt == attempt
        outbox.complete(ctx, [(job, failure)], now)
        row = _row(ctx, mid)
        assert (row.state, row.last_error) == ("available", "503: provider down")
        assert message_status(ctx, mid)[0] == "retrying"
        assert outbox.claim(ctx, "w", 10, now, lease_s=30) == []  # backoff: not due yet
        now = row.run_at + timedelta(milliseconds=1)
    [job] = outbox.claim(ctx, "w", 10, now, lease_s=30)
    assert job.attempt == 3
    outbox.complete(ctx, [(job, failure)], now)
    row = _row(ctx, mid)
    assert (row.state, row.attempt, row.finished_at is not None) == ("discarded", 3, True)
    assert message_status(ctx, mid) == ("failed", "gave up after 3 attempts: 503: provider down")
    assert outbox.claim(ctx, "w", 10, now + timedelta(days=1), lease_s=30) == []


def test_an_unknown_outcome_on_the_last_attempt_is_discarded_and_says_so(ctx, settings, demo):
    settings.max_attempts = 1
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    mid = enqueue(ctx, contact_of(ctx, PHONE).id, OFFERS, "20 % auf alles")
    now = utcnow()
    [job] = outbox.claim(ctx, "w", 10, now, lease_s=30)
    outbox.complete(ctx, [(job, SendResult(SendOutcome.UNKNOWN, error_code="timeout"))], now)
    assert _row(ctx, mid).state == "discarded"
    assert message_status(ctx, mid) == ("failed", "unknown outcome: gave up after 1 attempts: timeout")


def test_a_lease_that_expires_on_the_last_attempt_is_discarded_with_the_reason(ctx, settings, demo):
    settings.max_attempts = 1
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    mid = enqueue(ctx, contact_of(ctx, PHONE).id, OFFERS, "20 % auf alles")
    now = utcnow()
    assert len(outbox.claim(ctx, "dies", 10, now, lease_s=30)) == 1
    assert outbox.rescue(ctx, now + timedelta(seconds=31)) == 1
    row = _row(ctx, mid)
    assert (row.state, row.last_error) == ("discarded", "lease expired on the last attempt")
    assert outbox.claim(ctx, "w", 10, now + timedelta(days=1), lease_s=30) == []


def test_enqueue_many_skips_contacts_without_a_legal_basis_with_the_reason_and_queues_nothing_for_them(
    ctx, demo
):
    """`may_send` inside `enqueue_many` (C5): no consent, withdrawn and erased are skipped, not queued."""
    phones = {"ok": "+4915100000001", "never": "+4915100000002", "withdrawn": "+4915100000003"}
    subscribe(ctx, phones["ok"], ["angebote"])
    subscribe(ctx, phones["never"], ["produktnews"])
    subscribe(ctx, phones["withdrawn"], ["angebote"])
    erased_phone = "+4915100000004"
    subscribe(ctx, erased_phone, ["angebote"])
    from konsent.flows.inbound import simulator

    simulator.phone_send(ctx, sim_account(ctx).id, phones["withdrawn"], "STOP")
    drain(ctx)
    ids = {k: contact_of(ctx, p).id for k, p in phones.items()}
    ids["erased"] = contact_of(ctx, erased_phone).id
    acc = sim_account(ctx).id
    with ctx.db.write() as s:
        s.get(Contact, ids["erased"]).erased_at = utcnow()  # type: ignore[union-attr]
    with ctx.db.write() as s:
        contacts = {k: s.get(Contact, cid) for k, cid in ids.items()}
        drafts = [messaging.Draft(c, OutboundContent(text="Angebot"), acc) for c in contacts.values()]  # type: ignore[arg-type]
        result = messaging.enqueue_many(ctx, s, drafts, OFFERS, author="test")
    assert set(result.queued) == {ids["ok"]}
    assert result.skipped == {
        ids["never"]: "no_consent",
        ids["withdrawn"]: "withdrawn",
        ids["erased"]: "erased",
    }
    with ctx.db.read() as s:
        assert set(s.scalars(select(OutboxRow.contact_id).where(OutboxRow.purpose == OFFERS))) == {ids["ok"]}
        assert set(
            s.scalars(select(Message.contact_id).where(Message.purpose == OFFERS, Message.direction == "out"))
        ) == {ids["ok"]}
