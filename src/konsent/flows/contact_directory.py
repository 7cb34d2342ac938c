"""The contact directory of the REST API (M4): contact pages, create a contact, consents, start an opt-in.

Owns `contacts_page`, `create_contact`, `consents`, `start_opt_in` and `jsonable`; each calls the flows
the admin uses.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.domain.purposes import ConsentStatus
from konsent.flows import contacts
from konsent.flows.consent import optin
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.privacy import importer
from konsent.store.tables import ChannelAccount, Consent, Contact, Tenant


def contacts_page(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    limit: int,
    before_id: int | None,
    topic: str | None = None,
    address: str | None = None,
    only: Any | None = None,
) -> list[Contact]:
    """A tenant's contacts, newest first, after a cursor; optionally only active subscribers of a
    topic, or the contact behind an address (found by blind index on every channel, S1); `only` is
    the caller's scope (flows.inbox.scope)."""
    q = select(Contact).where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None))
    if only is not None:
        q = q.where(only)
    if address:
        ids = []
        for account in tenants.channel_accounts(s, tenant_id):
            try:
                normal = importer.normalize_address(ctx, account, address)
            except ValueError:
                continue
            ident = contacts.find_identity(ctx, s, account, normal)
            if ident is not None:
                ids.append(ident.contact_id)
        q = q.where(Contact.id.in_(ids))
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


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and rows of a flow's answer as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def create_contact(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    channel_account_id: int,
    record: dict[str, str],
) -> dict[str, Any]:
    """One contact, with consent only where the evidence is complete (C7): the importer's rules."""
    report = importer.import_records(ctx, tenant_id, channel_account_id, [record], actor=actor, session=s)
    row = report.rows[0]
    out: dict[str, Any] = {"outcome": row.outcome, "reason": row.reason, "contact_id": None}
    account = tenants.get_account(s, tenant_id, channel_account_id)
    if row.outcome != "rejected":
        address = importer.normalize_address(ctx, account, record["address"])
        ident = contacts.find_identity(ctx, s, account, address)
        out["contact_id"] = ident.contact_id if ident else None
    return out


def consents(s: Session, tenant_id: int, contact_id: int) -> list[dict[str, Any]]:
    """A contact's consent per purpose, as the ledger left it (C3)."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    return [jsonable(r) for r in contacts.consent_rows(s, contact)]


def start_opt_in(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    *,
    topic_slugs: list[str],
    locale: str,
    source_url: str,
    channel_account_id: int | None,
) -> list[tuple[ChannelAccount, optin.PendingOptIn]]:
    """A pending opt-in per channel that can receive the code (or the one named); nothing is sent:
    the contact confirms by sending the code from their messenger (C2)."""
    tenant = s.get(Tenant, tenant_id)
    assert tenant is not None
    accounts = [
        a
        for a in tenants.channel_accounts(s, tenant_id)
        if a.active and ctx.adapter(a.kind).capabilities.receives_inbound
    ]
    if channel_account_id is not None:
        accounts = [a for a in accounts if a.id == channel_account_id]
        if not accounts:
            raise NotFound(message="No such channel account that can receive the code.")
    if not accounts:
        raise InvalidInput(detail="no channel of this tenant can receive a confirmation code")
    return [
        (
            a,
            optin.request_opt_in(
                ctx,
                s,
                tenant,
                channel_account_id=a.id,
                topic_slugs=topic_slugs,
                locale=locale,
                source_url=source_url,
            ),
        )
        for a in accounts
    ]
