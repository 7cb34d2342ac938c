"""Use cases the REST API adds to the admin's (M4): each calls the flows the admin uses."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.purposes import ConsentStatus
from konsent.store.tables import Consent, Contact


def contacts_page(
    s: Session, tenant_id: int, limit: int, before_id: int | None, topic: str | None = None
) -> list[Contact]:
    """A tenant's contacts, newest first, after a cursor; optionally only active subscribers of a topic."""
    q = select(Contact).where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None))
    if before_id is not None:
        q = q.where(Contact.id < before_id)
    if topic:
        purpose = topic if topic.startswith("newsletter:") else f"newsletter:{topic}"
        q = q.where(
            select(Consent.id)
            .where(
                Consent.tenant_id == tenant_id,
                Consent.contact_id == Contact.id,
                Consent.purpose == purpose,
                Consent.status == ConsentStatus.ACTIVE,
            )
            .exists()
        )
    return list(s.scalars(q.order_by(Contact.id.desc()).limit(limit)))
