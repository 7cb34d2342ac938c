"""The admin's first page: counts of contacts, active consents per topic, pending opt-ins, queue.

Owns `dashboard`; shows no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.flows.organisation import tenants
from konsent.store.tables import Consent, Contact, OptInRequest, OutboxRow
from konsent.store.types import utcnow


@dataclass(frozen=True)
class Dashboard:
    contacts: int
    active_by_topic: list[tuple[str, dict[str, str], int]]  # slug, names, count
    pending_optins: int
    queued_messages: int


def dashboard(s: Session, tenant_id: int, now: datetime | None = None) -> Dashboard:
    """The numbers on the admin's first page; no personal data."""
    now = now or utcnow()
    n_contacts = s.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None))
    )
    active = dict(
        s.execute(
            select(Consent.purpose, func.count())
            .where(Consent.tenant_id == tenant_id, Consent.status == "active")
            .group_by(Consent.purpose)
        ).all()
    )
    pending = s.scalar(
        select(func.count())
        .select_from(OptInRequest)
        .where(
            OptInRequest.tenant_id == tenant_id,
            OptInRequest.confirmed_at.is_(None),
            OptInRequest.expires_at > now,
        )
    )
    queued = s.scalar(
        select(func.count())
        .select_from(OutboxRow)
        .where(
            OutboxRow.tenant_id == tenant_id,
            OutboxRow.state.in_(("available", "running", "unconfirmed", "held")),
        )
    )
    by_topic = [
        (t.slug, dict(t.names), int(active.get(f"newsletter:{t.slug}", 0)))
        for t in tenants.topics(s, tenant_id, active_only=False)
    ]
    return Dashboard(int(n_contacts or 0), by_topic, int(pending or 0), int(queued or 0))
