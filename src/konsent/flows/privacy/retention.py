"""The deletion concept: per-tenant retention rules and the run that applies them (L1, S4).

A run deletes in small batches, each its own short transaction, so inbound webhooks and
the outbox keep flowing; it records its counts per category in a RetentionRun row and in
the audit log. The consent ledger is never pruned: it is the proof (C3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput
from konsent.domain.ledger import GENESIS, ChainEntry, ChainReport, entry_hash
from konsent.domain.purposes import ConsentStatus
from konsent.domain.retention import DEFAULT_HOURS, Category, Rule, effective_rules, validate_hours
from konsent.flows import audit
from konsent.flows.contact_data import retention as attribute_retention
from konsent.flows.context import Konsent
from konsent.store.chain import AUDIT, chain_head, iter_chain
from konsent.store.tables import (
    AuditEntry,
    Consent,
    Contact,
    Conversation,
    Message,
    OptInRequest,
    PrivacyExport,
    PrivacyLink,
    PrivacyRequest,
    RetentionRule,
    RetentionRun,
    Tenant,
    WebhookEvent,
)
from konsent.store.types import utcnow

log = logging.getLogger(__name__)

BATCH = 5000
CONTACT_BATCH = 200
SCHEDULE_EVERY = timedelta(hours=1)


# --- rules ---------------------------------------------------------------------------------------


def rules(s: Session, tenant_id: int) -> list[Rule]:
    rows = s.scalars(select(RetentionRule).where(RetentionRule.tenant_id == tenant_id)).all()
    return effective_rules({r.category: r.hours for r in rows})


def rule_map(s: Session, tenant_id: int) -> dict[Category, Rule]:
    return {r.category: r for r in rules(s, tenant_id)}


def set_rule(s: Session, tenant_id: int, category: str, hours: int, actor: str) -> Rule:
    """Change one retention period (audited); a clear 4xx for unknown categories or silly periods."""
    try:
        cat = Category(category)
    except ValueError as exc:
        raise InvalidInput("unknown retention category {category}", category=repr(category)) from exc
    reason = validate_hours(cat, hours)
    if reason:
        raise InvalidInput(detail=reason)
    row = s.scalars(
        select(RetentionRule).where(RetentionRule.tenant_id == tenant_id, RetentionRule.category == cat.value)
    ).one_or_none()
    old = row.hours if row else DEFAULT_HOURS[cat]
    if row is None:
        row = RetentionRule(tenant_id=tenant_id, category=cat.value, hours=hours)
        s.add(row)
    row.hours, row.updated_by, row.updated_at = hours, actor, utcnow()
    audit.record(s, tenant_id, actor, "retention.rule.set", f"retention:{cat.value}", old=old, new=hours)
    return Rule(cat, hours)


# --- what falls due ------------------------------------------------------------------------------


def _closed_conversations(tenant_id: int, cutoff: datetime) -> Any:
    return select(Conversation.id).where(
        Conversation.tenant_id == tenant_id,
        Conversation.state == "closed",
        Conversation.closed_at < cutoff,
    )


def _due_messages(tenant_id: int, cutoff: datetime) -> Any:
    """Messages of conversations closed before the cutoff, and finished newsletter messages."""
    return select(Message.id).where(
        Message.tenant_id == tenant_id,
        or_(
            Message.conversation_id.in_(_closed_conversations(tenant_id, cutoff)),
            and_(
                Message.conversation_id.is_(None),
                Message.created_at < cutoff,
                Message.status.not_in(("queued", "retrying")),
            ),
        ),
    )


def _inactive_contacts(tenant_id: int, cutoff: datetime) -> Any:
    active = select(Consent.contact_id).where(
        Consent.tenant_id == tenant_id, Consent.status == ConsentStatus.ACTIVE
    )
    return select(Contact.id).where(
        Contact.tenant_id == tenant_id,
        Contact.erased_at.is_(None),
        func.coalesce(Contact.last_activity_at, Contact.created_at) < cutoff,
        Contact.id.not_in(active),
    )


def _due_selects(tenant_id: int, r: dict[Category, Rule], now: datetime) -> dict[Category, Any]:
    return {
        Category.UNCONFIRMED_OPTINS: select(OptInRequest.id).where(
            OptInRequest.tenant_id == tenant_id,
            OptInRequest.confirmed_at.is_(None),
            OptInRequest.requested_at < r[Category.UNCONFIRMED_OPTINS].cutoff(now),
        ),
        Category.MESSAGES: _due_messages(tenant_id, r[Category.MESSAGES].cutoff(now)),
        Category.INACTIVE_CONTACTS: _inactive_contacts(tenant_id, r[Category.INACTIVE_CONTACTS].cutoff(now)),
        Category.EXPORTS: select(PrivacyExport.id).where(
            PrivacyExport.tenant_id == tenant_id,
            or_(
                PrivacyExport.created_at < r[Category.EXPORTS].cutoff(now),
                PrivacyExport.expires_at < now,
                PrivacyExport.downloaded_at.is_not(None),
            ),
        ),
        Category.RAW_WEBHOOKS: select(WebhookEvent.id).where(
            WebhookEvent.tenant_id == tenant_id,
            WebhookEvent.received_at < r[Category.RAW_WEBHOOKS].cutoff(now),
        ),
        Category.AUDIT_LOG: select(AuditEntry.id).where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.created_at < r[Category.AUDIT_LOG].cutoff(now),
        ),
    }


def due_counts(s: Session, tenant_id: int, now: datetime | None = None) -> dict[str, int]:
    """What a run would delete now, per category (the dry run)."""
    now = now or utcnow()
    out = {}
    for cat, q in _due_selects(tenant_id, rule_map(s, tenant_id), now).items():
        out[cat.value] = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    out[attribute_retention.CATEGORY] = attribute_retention.due_count(s, tenant_id, now)
    return out


def next_due(s: Session, tenant_id: int, now: datetime | None = None) -> dict[str, datetime | None]:
    """When the oldest item of each category falls due (for the admin's 'what comes next')."""
    now = now or utcnow()
    r = rule_map(s, tenant_id)
    oldest: dict[Category, datetime | None] = {
        Category.UNCONFIRMED_OPTINS: s.scalar(
            select(func.min(OptInRequest.requested_at)).where(
                OptInRequest.tenant_id == tenant_id, OptInRequest.confirmed_at.is_(None)
            )
        ),
        Category.MESSAGES: s.scalar(
            select(func.min(Conversation.closed_at)).where(
                Conversation.tenant_id == tenant_id, Conversation.state == "closed"
            )
        ),
        Category.INACTIVE_CONTACTS: s.scalar(
            select(func.min(func.coalesce(Contact.last_activity_at, Contact.created_at))).where(
                Contact.tenant_id == tenant_id, Contact.erased_at.is_(None)
            )
        ),
        Category.EXPORTS: s.scalar(
            select(func.min(PrivacyExport.created_at)).where(PrivacyExport.tenant_id == tenant_id)
        ),
        Category.RAW_WEBHOOKS: s.scalar(
            select(func.min(WebhookEvent.received_at)).where(WebhookEvent.tenant_id == tenant_id)
        ),
        Category.AUDIT_LOG: s.scalar(
            select(func.min(AuditEntry.created_at)).where(AuditEntry.tenant_id == tenant_id)
        ),
    }
    out: dict[str, datetime | None] = {}
    for cat, when in oldest.items():
        if when is not None and when.tzinfo is None:  # aggregates on SQLite lose the column type
            from datetime import UTC

            when = when.replace(tzinfo=UTC)
        out[cat.value] = (when + r[cat].period) if when is not None else None
    return out


# --- the run -------------------------------------------------------------------------------------


@dataclass
class RunReport:
    run_id: int
    tenant_id: int
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)


def _delete_batches(ctx: Konsent, ids_query: Any, model: Any, batch: int, before: Any = None) -> int:
    """Delete the rows `ids_query` selects, `batch` at a time, each batch one short transaction."""
    total = 0
    while True:
        with ctx.db.write() as s:
            ids = list(s.scalars(ids_query.limit(batch)).all())
            if not ids:
                return total
            if before is not None:
                before(s, ids)
            s.execute(
                delete(model).where(model.id.in_(ids)), execution_options={"synchronize_session": False}
            )
            total += len(ids)
        if len(ids) < batch:
            return total


def _drop_outbox(s: Session, message_ids: Any) -> None:
    """Rows pointing at these messages (the outbox, and any table added later) go first."""
    from konsent.flows.privacy.rights import dependent_tables

    for t in dependent_tables("message_id", frozenset({"messages", "consent_ledger", "audit_log"})):
        s.execute(delete(t).where(t.c.message_id.in_(message_ids)))


def _drop_conversation_dependents(s: Session, conversation_ids: list[int]) -> None:
    from konsent.flows.privacy.rights import dependent_tables

    for t in dependent_tables("conversation_id", frozenset({"messages", "conversations"})):
        s.execute(delete(t).where(t.c.conversation_id.in_(conversation_ids)))


def _prune_audit(ctx: Konsent, tenant_id: int, cutoff: datetime, actor: str, batch: int) -> int:
    """Drop audit entries past their period, leaving an anchor so the rest still verifies (S4)."""
    with ctx.db.write() as s:
        last = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant_id, AuditEntry.created_at < cutoff)
            .order_by(AuditEntry.seq.desc())
        ).first()
        if last is None:
            return 0
        up_to, anchor = last.seq, last.hash
        audit.record(s, tenant_id, actor, "audit.pruned", "audit", up_to_seq=up_to, anchor_hash=anchor)
    q = select(AuditEntry.id).where(AuditEntry.tenant_id == tenant_id, AuditEntry.seq <= up_to)
    return _delete_batches(ctx, q, AuditEntry, batch)


CONVERSATION_CHUNK = 500


def _delete_messages(ctx: Konsent, tenant_id: int, cutoff: datetime, batch: int) -> int:
    """Messages of conversations closed before the cutoff (then the conversations), then finished
    messages outside conversations. Walks by id with the indexes, so each batch stays cheap."""
    total, last_conv = 0, 0
    while True:
        with ctx.db.read() as s:
            conv_ids = list(
                s.scalars(
                    _closed_conversations(tenant_id, cutoff)
                    .where(Conversation.id > last_conv)
                    .order_by(Conversation.id)
                    .limit(CONVERSATION_CHUNK)
                ).all()
            )
        if not conv_ids:
            break
        last_conv = conv_ids[-1]
        while True:
            # One short transaction per batch; the ids never leave the database.
            with ctx.db.write() as s:
                due = (
                    select(Message.id)
                    .where(Message.tenant_id == tenant_id, Message.conversation_id.in_(conv_ids))
                    .order_by(Message.id)
                    .limit(batch)
                    .scalar_subquery()
                )
                _drop_outbox(s, due)
                res = s.execute(
                    delete(Message).where(Message.id.in_(due)),
                    execution_options={"synchronize_session": False},
                )
                n = int(res.rowcount or 0)  # type: ignore[attr-defined]
            total += n
            if n < batch:
                break
        with ctx.db.write() as s:
            _drop_conversation_dependents(s, conv_ids)
            s.execute(
                delete(Conversation).where(
                    Conversation.tenant_id == tenant_id, Conversation.id.in_(conv_ids)
                ),
                execution_options={"synchronize_session": False},
            )
    last_id = 0
    while True:
        with ctx.db.write() as s:
            ids = list(
                s.scalars(
                    select(Message.id)
                    .where(
                        Message.tenant_id == tenant_id,
                        Message.id > last_id,
                        Message.conversation_id.is_(None),
                        Message.created_at < cutoff,
                        Message.status.not_in(("queued", "retrying")),
                    )
                    .order_by(Message.id)
                    .limit(batch)
                ).all()
            )
            if ids:
                last_id = ids[-1]
                _drop_outbox(s, ids)
                s.execute(
                    delete(Message).where(Message.id.in_(ids)),
                    execution_options={"synchronize_session": False},
                )
                total += len(ids)
        if len(ids) < batch:
            return total


def run_retention(
    ctx: Konsent,
    tenant_id: int,
    *,
    dry_run: bool = False,
    actor: str = "system:retention",
    now: datetime | None = None,
    batch: int = BATCH,
) -> RunReport:
    """Apply the tenant's retention rules now; a dry run only counts (L1)."""
    from konsent.flows.privacy.rights import erase_contact

    now = now or utcnow()
    with ctx.db.write() as s:
        run = RetentionRun(tenant_id=tenant_id, started_at=now, dry_run=dry_run, actor=actor, counts={})
        s.add(run)
        s.flush()
        run_id = run.id
        r = rule_map(s, tenant_id)
        if dry_run:
            counts = due_counts(s, tenant_id, now)
    if not dry_run:
        q = _due_selects(tenant_id, r, now)
        counts = {
            Category.UNCONFIRMED_OPTINS.value: _delete_batches(
                ctx, q[Category.UNCONFIRMED_OPTINS], OptInRequest, batch
            ),
        }
        counts[Category.MESSAGES.value] = _delete_messages(
            ctx, tenant_id, r[Category.MESSAGES].cutoff(now), batch
        )
        erased = 0
        while True:
            with ctx.db.write() as s:
                ids = list(s.scalars(q[Category.INACTIVE_CONTACTS].limit(CONTACT_BATCH)).all())
                for cid in ids:
                    contact = s.get(Contact, cid)
                    assert contact is not None
                    erase_contact(ctx, s, contact, source="retention", actor=actor, at=now)
                erased += len(ids)
            if len(ids) < CONTACT_BATCH:
                break
        counts[Category.INACTIVE_CONTACTS.value] = erased
        counts[attribute_retention.CATEGORY] = attribute_retention.expire_values(ctx, tenant_id, now, batch)
        counts[Category.EXPORTS.value] = _delete_batches(ctx, q[Category.EXPORTS], PrivacyExport, batch)
        _delete_batches(
            ctx,
            select(PrivacyLink.id).where(
                PrivacyLink.tenant_id == tenant_id,
                or_(PrivacyLink.expires_at < now, PrivacyLink.used_at.is_not(None)),
            ),
            PrivacyLink,
            batch,
        )
        with ctx.db.write() as s:
            # Erasure requests by keyword that were never confirmed within 24 h lapse (D2, D5).
            s.execute(
                update(PrivacyRequest)
                .where(
                    PrivacyRequest.tenant_id == tenant_id,
                    PrivacyRequest.state == "confirming",
                    PrivacyRequest.confirm_until < now,
                )
                .values(state="rejected", completed_at=now, note="not confirmed within 24 hours"),
                execution_options={"synchronize_session": False},
            )
        counts[Category.RAW_WEBHOOKS.value] = _delete_batches(
            ctx, q[Category.RAW_WEBHOOKS], WebhookEvent, batch
        )
        counts[Category.AUDIT_LOG.value] = _prune_audit(
            ctx, tenant_id, r[Category.AUDIT_LOG].cutoff(now), actor, batch
        )
    with ctx.db.write() as s:
        finished = s.get(RetentionRun, run_id)
        assert finished is not None
        run = finished
        run.counts, run.finished_at = counts, utcnow()
        audit.record(s, tenant_id, actor, "retention.run", f"run:{run_id}", dry_run=dry_run, counts=counts)
    log.info("retention run %s tenant %s dry_run=%s counts=%s", run_id, tenant_id, dry_run, counts)
    return RunReport(run_id, tenant_id, dry_run, counts)


def run_if_due(ctx: Konsent, now: datetime | None = None) -> int:
    """The worker's periodic hook: run for each tenant whose last real run is over an hour old."""
    now = now or utcnow()
    done = 0
    with ctx.db.read() as s:
        last = dict(
            s.execute(
                select(RetentionRun.tenant_id, func.max(RetentionRun.started_at))
                .where(RetentionRun.dry_run.is_(False))
                .group_by(RetentionRun.tenant_id)
            ).all()
        )
        tenant_ids = list(s.scalars(select(Tenant.id)).all())
    for tid in tenant_ids:
        when = last.get(tid)
        if when is not None and when.tzinfo is None:
            from datetime import UTC

            when = when.replace(tzinfo=UTC)
        if when is None or now - when >= SCHEDULE_EVERY:
            run_retention(ctx, tid, now=now)
            done += 1
    if done:
        from konsent.flows.privacy.keyrotation import sweep_keystore

        sweep_keystore(ctx)
    return done


def past_runs(s: Session, tenant_id: int, limit: int = 20) -> list[RetentionRun]:
    return list(
        s.scalars(
            select(RetentionRun)
            .where(RetentionRun.tenant_id == tenant_id)
            .order_by(RetentionRun.id.desc())
            .limit(limit)
        ).all()
    )


# --- audit verification that survives pruning (S4) -----------------------------------------------


def verify_audit(s: Session, tenant_id: int) -> ChainReport:
    """Verify the audit chain; after pruning, start from the anchor the prune entry recorded."""
    entries = iter_chain(s, tenant_id, AUDIT)
    first = s.scalars(
        select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.seq)
    ).first()
    prev, expected = GENESIS, 1
    if first is not None and first.seq > 1:
        anchor = None
        for a in s.scalars(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "audit.pruned")
        ):
            if a.payload.get("up_to_seq") == first.seq - 1:
                anchor = a.payload.get("anchor_hash")
        if anchor is None:
            return ChainReport(
                False, 0, first.seq, f"entries before {first.seq} are missing without a record"
            )
        prev, expected = anchor, first.seq
    checked = 0
    e: ChainEntry
    for e in entries:
        if e.seq != expected:
            return ChainReport(False, checked, e.seq, f"entry {expected} is missing")
        if e.prev_hash != prev:
            return ChainReport(False, checked, e.seq, "link to the previous entry is broken")
        if entry_hash(prev, e.payload) != e.hash:
            return ChainReport(False, checked, e.seq, "entry content was changed")
        prev, expected, checked = e.hash, expected + 1, checked + 1
    head_seq, head_hash = chain_head(s, tenant_id, AUDIT)
    last_seq = expected - 1
    if (head_seq, head_hash) != (last_seq, prev):
        if head_seq > last_seq:
            return ChainReport(False, checked, last_seq + 1, f"entry {last_seq + 1} is missing")
        return ChainReport(False, checked, last_seq or None, "the chain does not end at its recorded head")
    return ChainReport(True, checked)
