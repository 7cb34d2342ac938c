"""Deletion concept: rules with defaults, batched run, dry run, counts in the audit log (L1, S4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from konsent.domain.errors import InvalidInput
from konsent.domain.retention import DEFAULT_HOURS, Category, one_month_later
from konsent.flows.privacy import retention
from konsent.store.tables import (
    AuditEntry,
    Contact,
    Conversation,
    Message,
    OptInRequest,
    RetentionRun,
    WebhookEvent,
)
from konsent.store.types import utcnow
from tests.helpers import request_code
from tests.privacy.util import say, subscribed_contact


def _count(ctx, model, *where):
    with ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _age_closed_conversation(ctx, days):
    with ctx.db.write() as s:
        for conv in s.scalars(select(Conversation)):
            conv.state = "closed"
            conv.closed_at = utcnow() - timedelta(days=days)


def test_defaults_are_those_of_the_requirements():
    """L1: 48 h, 90 days, 12 months, 30 days, 7 days, 3 years."""
    assert DEFAULT_HOURS[Category.UNCONFIRMED_OPTINS] == 48
    assert DEFAULT_HOURS[Category.MESSAGES] == 90 * 24
    assert DEFAULT_HOURS[Category.INACTIVE_CONTACTS] == 365 * 24
    assert DEFAULT_HOURS[Category.EXPORTS] == 30 * 24
    assert DEFAULT_HOURS[Category.RAW_WEBHOOKS] == 7 * 24
    assert DEFAULT_HOURS[Category.AUDIT_LOG] == 3 * 365 * 24


def test_due_date_is_one_month_later_clamped_to_month_end():
    """D5: Art. 12(3) one month; 31 January → 28/29 February."""
    from datetime import UTC, datetime

    assert one_month_later(datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    assert one_month_later(datetime(2026, 12, 5, tzinfo=UTC)) == datetime(2027, 1, 5, tzinfo=UTC)


def test_messages_of_conversations_closed_90_days_ago_are_deleted_younger_kept(ctx, demo):
    """L1: messages go 90 days after their conversation closed; a dry run only counts."""
    subscribed_contact(ctx)
    n = _count(ctx, Message)
    _age_closed_conversation(ctx, 89)
    assert retention.run_retention(ctx, demo.tenant_id).counts["messages"] == 0
    _age_closed_conversation(ctx, 91)
    dry = retention.run_retention(ctx, demo.tenant_id, dry_run=True)
    assert dry.counts["messages"] == n and _count(ctx, Message) == n
    real = retention.run_retention(ctx, demo.tenant_id, batch=2)  # several batches
    assert real.counts["messages"] == n
    assert _count(ctx, Message) == 0 and _count(ctx, Conversation) == 0
    with ctx.db.read() as s:
        runs = retention.past_runs(s, demo.tenant_id)
        assert [r.dry_run for r in runs][:2] == [False, True]
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.run")).all()
        assert entries[-1].payload["counts"]["messages"] == n


def test_unconfirmed_opt_ins_and_old_webhook_records_go(ctx, demo):
    """L1: unconfirmed opt-ins after 48 h, raw webhook records after 7 days."""
    request_code(ctx, ["angebote"])
    subscribed_contact(ctx)
    with ctx.db.write() as s:
        for r in s.scalars(select(OptInRequest).where(OptInRequest.confirmed_at.is_(None))):
            r.requested_at = utcnow() - timedelta(hours=49)
        for w in s.scalars(select(WebhookEvent)):
            w.received_at = utcnow() - timedelta(days=8)
    rep = retention.run_retention(ctx, demo.tenant_id)
    assert rep.counts["unconfirmed_optins"] == 1
    assert rep.counts["raw_webhooks"] >= 2 and _count(ctx, WebhookEvent) == 0
    assert _count(ctx, OptInRequest, OptInRequest.confirmed_at.is_(None)) == 0


def test_inactive_contact_without_purpose_is_erased_but_subscriber_kept(ctx, demo):
    """L1: no active purpose and no activity for 12 months → erased; a subscriber stays."""
    sub = subscribed_contact(ctx)
    say(ctx, "Hallo", phone="+4915100000001")
    with ctx.db.write() as s:
        for c in s.scalars(select(Contact)):
            c.last_activity_at = utcnow() - timedelta(days=400)
    rep = retention.run_retention(ctx, demo.tenant_id)
    assert rep.counts["inactive_contacts"] == 1
    with ctx.db.read() as s:
        assert s.get(Contact, sub).erased_at is None
        assert s.scalar(select(func.count()).select_from(Contact).where(Contact.erased_at.is_not(None))) == 1


def test_audit_log_pruning_keeps_the_chain_verifiable(ctx, demo):
    """S4, L1: after pruning entries older than 3 years, `audit verify` still passes; tampering fails."""
    from konsent.flows import audit

    with ctx.db.write() as s:
        for i in range(5):
            audit.record(s, demo.tenant_id, "user:1", "contact.view", f"contact:{i}")
    with ctx.db.write() as s:
        for e in s.scalars(select(AuditEntry).where(AuditEntry.seq <= 3)):
            e.created_at = utcnow() - timedelta(days=4 * 365)
    rep = retention.run_retention(ctx, demo.tenant_id)
    assert rep.counts["audit_log"] == 3
    with ctx.db.read() as s:
        assert retention.verify_audit(s, demo.tenant_id).ok
    with ctx.db.write() as s:
        e = s.scalars(select(AuditEntry).where(AuditEntry.seq == 5)).one()
        e.payload = {**e.payload, "note": "edited afterwards"}
    with ctx.db.read() as s:
        bad = retention.verify_audit(s, demo.tenant_id)
        assert not bad.ok and bad.first_broken_seq == 5


def test_rule_changes_are_validated_and_audited(ctx, demo):
    """L1: the admin may change a period within bounds; each change is audited."""
    with ctx.db.write() as s:
        retention.set_rule(s, demo.tenant_id, "messages", 30 * 24, "user:1")
    with ctx.db.read() as s:
        assert retention.rule_map(s, demo.tenant_id)[Category.MESSAGES].hours == 30 * 24
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.rule.set")).one()
    for cat, hours in (("messages", 0), ("audit_log", 24), ("nonsense", 48)):
        with ctx.db.write() as s, pytest.raises(InvalidInput):
            retention.set_rule(s, demo.tenant_id, cat, hours, "user:1")


def test_scheduler_hook_runs_once_per_hour(ctx, demo):
    """L1: the worker's periodic hook runs retention, then waits an hour."""
    assert retention.run_if_due(ctx) == 1
    assert retention.run_if_due(ctx) == 0
    assert retention.run_if_due(ctx, utcnow() + timedelta(hours=2)) == 1
    assert _count(ctx, RetentionRun) == 2


def test_worker_periodic_job_starts_retention_in_background(ctx, demo):
    """L1: the delivery worker's scheduler starts the deletion concept without blocking sending."""
    from konsent.delivery.worker import Worker

    w = Worker(ctx)
    w._last_retention = 0.0  # pretend a minute has passed since start
    w._scheduler = True  # on PostgreSQL only the worker holding the scheduler lock runs periodic jobs
    w.periodic()
    assert w._retention_thread is not None
    w._retention_thread.join(timeout=30)
    assert _count(ctx, RetentionRun) == 1


def test_unconfirmed_keyword_erasure_request_lapses(ctx, demo):
    """D2, D5: DELETE without DELETE YES within 24 h is closed as not confirmed; data stays."""
    from konsent.store.tables import PrivacyRequest

    cid = subscribed_contact(ctx)
    say(ctx, "LÖSCHEN")
    with ctx.db.write() as s:
        req = s.scalars(select(PrivacyRequest)).one()
        req.confirm_until = utcnow() - timedelta(minutes=1)
    retention.run_retention(ctx, demo.tenant_id)
    with ctx.db.read() as s:
        req = s.scalars(select(PrivacyRequest)).one()
        assert req.state == "rejected" and "not confirmed" in req.note
        assert s.get(Contact, cid).erased_at is None
