"""The language a contact-facing page speaks: the contact's own, else the tenant's (U2).

A link from a German chat opens a German page, whatever language the browser prefers.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.flows.privacy.rights import token_digest
from konsent.store.tables import Contact, PrivacyExport, PrivacyLink, Tenant


def _of_contact(s: Session, contact_id: int | None) -> str | None:
    if contact_id is None:
        return None
    row = s.execute(
        select(Contact.locale, Tenant.default_locale)
        .join(Tenant, Tenant.id == Contact.tenant_id)
        .where(Contact.id == contact_id)
    ).first()
    if row is None:
        return None
    return str(row[0] or row[1])


def for_export_link(s: Session, token: str) -> str | None:
    """The language of the contact an export link belongs to; None for an unknown link."""
    cid = s.scalar(select(PrivacyExport.contact_id).where(PrivacyExport.token_hash == token_digest(token)))
    return _of_contact(s, cid)


def for_portal_link(s: Session, token: str) -> str | None:
    """The language of the contact a self-service link belongs to; None for an unknown link."""
    cid = s.scalar(select(PrivacyLink.contact_id).where(PrivacyLink.token_hash == token_digest(token)))
    return _of_contact(s, cid)
