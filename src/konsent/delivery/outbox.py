"""The outbox queue: lease-based claim with the legal-basis re-check, fenced completion (invariant 1).

Claim, as the proven Postgres queues do it: one UPDATE … WHERE id IN (SELECT …
FOR UPDATE SKIP LOCKED) RETURNING that moves rows to `running` and bumps
`attempt`. In the same transaction the consent rows of the claimed contacts
are share-locked and `may_send` is asked again; rows that fail are refused
with their reason. A withdrawal locks outbox rows first and consent rows
second, so either the claim commits before the withdrawal or it sees it.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from konsent.channels.base import AccountConfig, OutboundContent, SendOutcome, SendResult
from konsent.domain.purposes import ConsentState, ConsentStatus, ContactSnapshot, Purpose, may_send
from konsent.flows import consent as consent_flow
from konsent.flows.contacts import open_for_contact
from konsent.flows.context import Konsent
from konsent.flows.tenants import account_config
from konsent.store.tables import (
    ChannelAccount,
    Consent,
    Contact,
    ContactIdentity,
    Message,
    OutboxRow,
)


@dataclass(frozen=True)
class Job:
    """One claimed message, ready to hand to its channel."""

    outbox_id: int
    attempt: int
    max_attempts: int
    tenant_id: int
    message_id: int
    contact_id: int
    account: AccountConfig
    address: str
    content: OutboundContent
    purpose: str


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: 2, 4, 8 … seconds, capped at one hour."""
    base: float = min(3600, 2**attempt)
    return base * (0.75 + random.random() / 2)


def claim(ctx: Konsent, worker_id: str, limit: int, now: datetime, lease_s: int) -> list[Job]:
    """Claim up to `limit` due rows, re-check their legal basis, return the sendable ones."""
    with ctx.db.write() as s:
        due = (
            select(OutboxRow.id)
            .where(OutboxRow.state == "available", OutboxRow.run_at <= now)
            .order_by(OutboxRow.run_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = (
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(due.scalar_subquery()))
                .values(
                    state="running",
                    attempt=OutboxRow.attempt + 1,
                    lease_until=now + timedelta(seconds=lease_s),
                    locked_by=worker_id,
                )
                .returning(OutboxRow)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        if not claimed:
            return []
        return _check_and_load(ctx, s, list(claimed), now)


def _check_and_load(ctx: Konsent, s: Session, rows: list[OutboxRow], now: datetime) -> list[Job]:
    contact_ids = {r.contact_id for r in rows}
    contacts = {c.id: c for c in s.scalars(select(Contact).where(Contact.id.in_(contact_ids))).all()}
    consents: dict[int, dict[str, ConsentState]] = defaultdict(dict)
    q = select(Consent).where(Consent.contact_id.in_(contact_ids))
    if ctx.db.is_postgres:
        q = q.with_for_update(read=True)  # FOR SHARE: a withdrawal in flight must finish first
    for c in s.scalars(q).all():
        consents[c.contact_id][c.purpose] = ConsentState(
            ConsentStatus(c.status), c.text_version, c.changed_at
        )
    idents = {
        (i.contact_id, i.channel_account_id): i
        for i in s.scalars(select(ContactIdentity).where(ContactIdentity.contact_id.in_(contact_ids))).all()
    }
    messages = {
        m.id: m for m in s.scalars(select(Message).where(Message.id.in_([r.message_id for r in rows]))).all()
    }
    accounts: dict[int, AccountConfig] = {}
    jobs: list[Job] = []
    for row in rows:
        contact = contacts.get(row.contact_id)
        ident = idents.get((row.contact_id, row.channel_account_id))
        if contact is None or contact.tenant_id != row.tenant_id or ident is None:
            _refuse(s, row, messages.get(row.message_id), "the contact no longer exists", now)
            continue
        snap = ContactSnapshot(
            consents=consents.get(contact.id, {}),
            has_contacted_us=contact.has_contacted_us,
            erased=contact.erased_at is not None or contact.wrapped_key is None,
            unreachable=contact.unreachable,
            objected_to_marketing=contact.objected_marketing,
        )
        decision = may_send(snap, Purpose.parse(row.purpose), now, row.min_text_version)
        msg = messages[row.message_id]
        if not decision:
            _refuse(s, row, msg, f"{decision.reason}: {decision.detail}", now)
            continue
        if row.channel_account_id not in accounts:
            acc = s.get(ChannelAccount, row.channel_account_id)
            assert acc is not None
            accounts[row.channel_account_id] = account_config(ctx, s, acc)
        jobs.append(
            Job(
                outbox_id=row.id,
                attempt=row.attempt,
                max_attempts=row.max_attempts,
                tenant_id=row.tenant_id,
                message_id=row.message_id,
                contact_id=row.contact_id,
                account=accounts[row.channel_account_id],
                address=open_for_contact(ctx, s, contact, "address", ident.address_sealed),
                content=OutboundContent.from_dict(
                    json.loads(open_for_contact(ctx, s, contact, "message", msg.body_sealed))
                ),
                purpose=row.purpose,
            )
        )
    return jobs


def _refuse(s: Session, row: OutboxRow, msg: Message | None, reason: str, now: datetime) -> None:
    row.state = "refused"
    row.last_error = reason[:300]
    row.finished_at = now
    if msg is not None:
        msg.status = "refused"
        msg.status_reason = reason[:300]
        msg.updated_at = now


def _fenced(s: Session, job: Job) -> OutboxRow | None:
    """The row, only if this worker still holds it (a stale worker must not overwrite)."""
    return s.scalars(
        select(OutboxRow).where(
            OutboxRow.id == job.outbox_id,
            OutboxRow.attempt == job.attempt,
            OutboxRow.state == "running",
        )
    ).one_or_none()


def complete(ctx: Konsent, results: list[tuple[Job, SendResult]], now: datetime) -> None:
    """Record the outcome of a batch of sends in one transaction, fenced by attempt."""
    if not results:
        return
    with ctx.db.write() as s:
        for job, res in results:
            row = _fenced(s, job)
            if row is None:
                continue
            msg = s.get(Message, job.message_id)
            assert msg is not None
            _apply(ctx, s, row, msg, job, res, now)


def _apply(
    ctx: Konsent, s: Session, row: OutboxRow, msg: Message, job: Job, res: SendResult, now: datetime
) -> None:
    out = res.outcome
    msg.updated_at = now
    if out is SendOutcome.SENT:
        row.state, row.finished_at = "done", now
        msg.provider_id = res.provider_id
        if msg.status in ("queued", "retrying"):
            msg.status = "sent"
        return
    reason = f"{res.error_code or out.value}: {res.error_text}".strip(": ")[:300]
    row.last_error = reason
    if out is SendOutcome.RETRY_AFTER:
        row.state = "available"
        row.attempt -= 1  # a rate limit spends no attempt
        row.run_at = now + timedelta(seconds=res.retry_after_s or 1.0)
        row.lease_until = None
        return
    if out in (SendOutcome.TRANSIENT, SendOutcome.UNKNOWN):
        if out is SendOutcome.UNKNOWN:
            msg.status_reason = "unknown outcome: retried, the provider may deliver twice"
        if row.attempt < row.max_attempts:
            row.state = "available"
            row.run_at = now + timedelta(seconds=backoff_seconds(row.attempt))
            row.lease_until = None
            msg.status = "retrying"
            return
        row.state, row.finished_at = "discarded", now
        msg.status, msg.status_reason = (
            "failed",
            f"gave up after {row.attempt} attempts: {reason}"[:300],
        )
        return
    row.state, row.finished_at = "discarded", now
    msg.status, msg.status_reason = "failed", reason
    contact = s.get(Contact, job.contact_id)
    if contact is None:
        return
    if out is SendOutcome.UNREACHABLE:
        contact.unreachable = True
    elif out is SendOutcome.MARKETING_OPT_OUT:
        consent_flow.withdraw(s, contact, None, source="provider_opt_out", at=now, channel=job.account.kind)


def rescue(ctx: Konsent, now: datetime) -> int:
    """Return rows whose lease expired (their worker died) to the queue, or discard them."""
    with ctx.db.write() as s:
        expired = and_(OutboxRow.state == "running", OutboxRow.lease_until < now)
        discarded = s.execute(
            update(OutboxRow)
            .where(expired, OutboxRow.attempt >= OutboxRow.max_attempts)
            .values(state="discarded", finished_at=now, last_error="lease expired on the last attempt")
        ).rowcount  # type: ignore[attr-defined]
        back = s.execute(
            update(OutboxRow)
            .where(expired)
            .values(state="available", lease_until=None, locked_by=None, run_at=now)
        ).rowcount  # type: ignore[attr-defined]
        return int(discarded or 0) + int(back or 0)


def pending_count(ctx: Konsent, now: datetime | None = None) -> int:
    """Rows still to be worked on (available, due or not, and running)."""
    from sqlalchemy import func

    with ctx.db.read() as s:
        q = (
            select(func.count())
            .select_from(OutboxRow)
            .where(or_(OutboxRow.state == "available", OutboxRow.state == "running"))
        )
        if now is not None:
            q = q.where(or_(OutboxRow.state == "running", OutboxRow.run_at <= now))
        return int(s.scalar(q) or 0)
