"""Granting and withdrawing consent; every change goes into the ledger (C3, C4, invariant 2, 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from konsent.domain.purposes import ConsentStatus, Purpose
from konsent.domain.webhooks import consent_source
from konsent.flows.webhooks.events import emit
from konsent.store.chain import append_ledger
from konsent.store.tables import Consent, Contact, Message, OutboxRow


def grant_consent(
    s: Session,
    contact: Contact,
    purpose: Purpose,
    *,
    text_version: int,
    evidence: dict[str, Any],
    channel_account_id: int | None,
    at: datetime,
) -> None:
    """Record a confirmed consent for one purpose, with its evidence, in the ledger (C3)."""
    row = s.scalars(
        select(Consent).where(
            Consent.tenant_id == contact.tenant_id,
            Consent.contact_id == contact.id,
            Consent.purpose == str(purpose),
        )
    ).one_or_none()
    if row is None:
        row = Consent(tenant_id=contact.tenant_id, contact_id=contact.id, purpose=str(purpose))
        s.add(row)
    row.status = ConsentStatus.ACTIVE
    row.text_version = text_version
    row.channel_account_id = channel_account_id
    row.changed_at = at
    append_ledger(s, contact.tenant_id, contact.id, str(purpose), "granted", evidence)
    emit(
        s,
        contact.tenant_id,
        "consent.granted",
        {
            "contact_id": contact.id,
            "purpose": str(purpose),
            "source": _grant_source(evidence),
            "text_version": text_version,
            "channel_account_id": channel_account_id,
        },
    )


def _grant_source(evidence: dict[str, Any]) -> str:
    """The door a consent came through, for webhook receivers: widget, import, api, bot, ..."""
    if evidence.get("method") == "import":
        return "api" if str(evidence.get("imported_by", "")).startswith("token:") else "import"
    return consent_source(str(evidence.get("source") or evidence.get("method") or ""))


def withdraw(
    s: Session,
    contact: Contact,
    purposes: list[str] | None,
    *,
    source: str,
    at: datetime,
    channel: str = "",
) -> list[str]:
    """Withdraw consent for the given purposes (None: every marketing purpose) (C4).

    In the same transaction, the contact's queued messages for those purposes that
    no worker has claimed yet are cancelled (invariant 2). Outbox rows are locked
    before consent rows, the same order a worker's claim takes them, so the two
    never deadlock and a claim either commits before this withdrawal or sees it.
    """
    q = select(Consent).where(
        Consent.tenant_id == contact.tenant_id,
        Consent.contact_id == contact.id,
        Consent.status == ConsentStatus.ACTIVE,
        Consent.purpose.like("newsletter:%"),
    )
    if purposes is not None:
        q = q.where(Consent.purpose.in_(purposes))
    active = [r.purpose for r in s.scalars(q).all()]
    targets = active if purposes is None else purposes
    cancel_queued(s, contact, [p for p in targets if Purpose.parse(p).is_marketing], "withdrawn", at)
    rows = s.scalars(q.with_for_update()).all()
    for row in rows:
        row.status = ConsentStatus.WITHDRAWN
        row.changed_at = at
        append_ledger(
            s,
            contact.tenant_id,
            contact.id,
            row.purpose,
            "withdrawn",
            {"source": source, "channel": channel, "withdrawn_at": at},
        )
        data = {"contact_id": contact.id, "purpose": row.purpose, "source": consent_source(source)}
        emit(s, contact.tenant_id, "consent.withdrawn", {**data, "channel": channel})
    return sorted(r.purpose for r in rows)


PLATFORM_RESUME = "platform_resume"


def record_platform_resume(
    s: Session, contact: Contact, *, source: str, at: datetime, channel: str = ""
) -> None:
    """The contact turned marketing back on in the messenger's own settings: recorded in the
    ledger as an event, never as consent (C3, C6): every purpose stays as it is, and a new
    opt-in with its consent text is needed before marketing goes out again."""
    append_ledger(
        s,
        contact.tenant_id,
        contact.id,
        "newsletter:*",
        PLATFORM_RESUME,
        {"source": source, "channel": channel, "at": at, "grants_consent": False},
    )


def cancel_queued(s: Session, contact: Contact, purposes: list[str], reason: str, at: datetime) -> int:
    """Cancel the contact's not-yet-claimed outbox rows for these purposes; return how many."""
    if not purposes:
        return 0
    cancelled = (
        s.execute(
            update(OutboxRow)
            .where(
                OutboxRow.tenant_id == contact.tenant_id,
                OutboxRow.contact_id == contact.id,
                OutboxRow.purpose.in_(purposes),
                OutboxRow.state.in_(("available", "held")),  # held: its channel is switched off
            )
            .values(state="cancelled", finished_at=at, last_error=reason)
            .returning(OutboxRow.message_id)
        )
        .scalars()
        .all()
    )
    if cancelled:
        s.execute(
            update(Message)
            .where(Message.tenant_id == contact.tenant_id, Message.id.in_(cancelled))
            .values(status="cancelled", status_reason=reason, updated_at=at)
        )
    return len(cancelled)
