"""Contacts and their channel identities, found by blind index, sealed at rest (S1, S2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain import costs
from konsent.domain.errors import NotFound
from konsent.domain.purposes import ContactSnapshot, consent_state
from konsent.flows.contact_data.index import index_name
from konsent.flows.context import Konsent
from konsent.flows.webhooks.events import emit
from konsent.store.tables import ChannelAccount, Consent, Contact, ContactIdentity
from konsent.store.types import utcnow


def _aad(contact_id: int, field: str) -> bytes:
    return f"contact:{contact_id}:{field}".encode()


def get_contact(s: Session, tenant_id: int, contact_id: int) -> Contact:
    """A contact of this tenant, or NotFound (never another tenant's, invariant 4)."""
    if not 0 < contact_id < 2**63:  # no row has it; the database would raise instead of finding none
        raise NotFound()
    c = s.scalars(
        select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id)
    ).one_or_none()
    if c is None:
        raise NotFound()
    return c


def find_identity(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    address: str | None,
    user_id: str | None = None,
) -> ContactIdentity | None:
    """Look a contact up by address, else by provider user id (WhatsApp BSUID)."""
    found = identity_and_contact(ctx, s, account, address, user_id)
    return found[0] if found is not None else None


def identity_and_contact(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    address: str | None,
    user_id: str | None = None,
) -> tuple[ContactIdentity, Contact | None] | None:
    """`find_identity` with its contact, read in the same statement."""
    base = (
        select(ContactIdentity, Contact)
        .outerjoin(Contact, Contact.id == ContactIdentity.contact_id)
        .where(
            ContactIdentity.tenant_id == account.tenant_id,
            ContactIdentity.channel_account_id == account.id,
        )
    )
    if address:
        idx = ctx.keys.index(s, account.tenant_id, account.kind, address)
        hit = s.execute(base.where(ContactIdentity.address_index == idx)).one_or_none()
        if hit is not None:
            return hit[0], hit[1]
    if user_id:
        uidx = ctx.keys.index(s, account.tenant_id, account.kind + ":uid", user_id)
        found = s.execute(base.where(ContactIdentity.user_id_index == uidx)).first()
        return (found[0], found[1]) if found is not None else None
    return None


def get_or_create_contact(
    ctx: Konsent,
    s: Session,
    account: ChannelAccount,
    address: str,
    *,
    user_id: str | None = None,
    name: str | None = None,
    locale: str | None = None,
    contacted_at: datetime | None = None,
    window_at: datetime | None = None,
) -> tuple[Contact, ContactIdentity, bool]:
    """The contact behind an address on a channel account, created on first contact.

    A contact created because they wrote to us (`contacted_at`; `window_at` when the message opens
    a messaging window) is stored so at once, without a second write of the new rows."""
    found = identity_and_contact(ctx, s, account, address, user_id)
    if found is not None:
        ident, contact = found
        contact = contact or s.get(Contact, ident.contact_id)
        assert contact is not None and contact.tenant_id == account.tenant_id
        if ident.country is None and (country := costs.country_of(address) or costs.country_of(user_id)):
            ident.country = country  # identities from before 0018 learn theirs when the contact writes
        if user_id and ident.user_id_index is None:
            ident.user_id_index = ctx.keys.index(s, account.tenant_id, account.kind + ":uid", user_id)
        if locale and not contact.locale:
            contact.locale = locale
        if name and contact.name_sealed is None and contact.wrapped_key is not None:
            # the provider's profile name, until staff set one (U5); sealed like every name
            contact.name_sealed = seal_for_contact(ctx, s, contact, "name", name[:200])
            index_name(ctx, s, contact, name[:200])
        return contact, ident, False
    contact = Contact(
        tenant_id=account.tenant_id,
        locale=locale,
        last_activity_at=contacted_at or utcnow(),
        has_contacted_us=contacted_at is not None,
        unreachable=False,
    )
    s.add(contact)
    s.flush()
    key = ctx.keys.new_contact_key(s, contact)
    if name:
        contact.name_sealed = crypto.seal_text(key, name[:200], _aad(contact.id, "name"))
        index_name(ctx, s, contact, name[:200])
    ident = ContactIdentity(
        tenant_id=account.tenant_id,
        contact_id=contact.id,
        channel_account_id=account.id,
        address_index=ctx.keys.index(s, account.tenant_id, account.kind, address),
        address_sealed=crypto.seal_text(key, address, _aad(contact.id, "address")),
        user_id_index=(
            ctx.keys.index(s, account.tenant_id, account.kind + ":uid", user_id) if user_id else None
        ),
        # the country of a number (or BSUID) for price estimates (CH6); None on other channels
        country=costs.country_of(address) or costs.country_of(user_id) or None,
        last_inbound_at=window_at,
    )
    s.add(ident)
    s.flush()
    emit(
        s, contact.tenant_id, "contact.created", {"contact_id": contact.id, "channel_account_id": account.id}
    )
    return contact, ident, True


def seal_for_contact(ctx: Konsent, s: Session, contact: Contact, field: str, text: str) -> bytes:
    return crypto.seal_text(ctx.keys.contact_key(s, contact), text, _aad(contact.id, field))


def open_for_contact(ctx: Konsent, s: Session, contact: Contact, field: str, blob: bytes) -> str:
    if blob[:2] == SHARED:
        return open_shared(ctx, s, contact.tenant_id, blob)
    return crypto.open_text(ctx.keys.contact_key(s, contact), blob, _aad(contact.id, field))


# A message body that is the same for many contacts and names nobody (an unpersonalised
# broadcast) is sealed once with the tenant key and stored with this marker, instead of once
# per contact with each contact's key. Erasure still deletes the contact's copies (D2, S1).
SHARED = b"\x00S"


def seal_shared(ctx: Konsent, s: Session, tenant_id: int, text: str) -> bytes:
    """Seal a body shared by many contacts of a tenant (a newsletter text without names)."""
    return SHARED + ctx.keys.seal_for_tenant(s, tenant_id, text, f"tenant:{tenant_id}:shared-message")


def open_shared(ctx: Konsent, s: Session, tenant_id: int, blob: bytes) -> str:
    return ctx.keys.open_for_tenant(s, tenant_id, blob[2:], f"tenant:{tenant_id}:shared-message")


def contact_name(ctx: Konsent, s: Session, contact: Contact) -> str:
    if contact.name_sealed is None or contact.wrapped_key is None:
        return ""
    return open_for_contact(ctx, s, contact, "name", contact.name_sealed)


def address_of(ctx: Konsent, s: Session, contact: Contact, ident: ContactIdentity) -> str:
    return open_for_contact(ctx, s, contact, "address", ident.address_sealed)


@dataclass(frozen=True)
class ConsentRow:
    purpose: str
    status: str
    text_version: int
    changed_at: datetime


def consent_rows(s: Session, contact: Contact) -> list[ConsentRow]:
    rows = s.scalars(
        select(Consent)
        .where(Consent.tenant_id == contact.tenant_id, Consent.contact_id == contact.id)
        .order_by(Consent.purpose)
    ).all()
    return [ConsentRow(r.purpose, r.status, r.text_version, r.changed_at) for r in rows]


def snapshot(s: Session, contact: Contact) -> ContactSnapshot:
    """What `may_send` needs about one contact, read in the caller's transaction."""
    return ContactSnapshot.of(
        contact,
        {r.purpose: consent_state(r.status, r.text_version, r.changed_at) for r in consent_rows(s, contact)},
    )


def list_contacts(
    s: Session, tenant_id: int, limit: int = 50, offset: int = 0, only: Any | None = None
) -> list[Contact]:
    """A tenant's contacts, newest first (no erased ones); `only` is the caller's scope (inbox.scope)."""
    q = select(Contact).where(Contact.tenant_id == tenant_id, Contact.erased_at.is_(None))
    if only is not None:
        q = q.where(only)
    return list(s.scalars(q.order_by(Contact.id.desc()).limit(min(limit, 500)).offset(offset)).all())


def identities(s: Session, contact: Contact) -> list[ContactIdentity]:
    return list(
        s.scalars(
            select(ContactIdentity).where(
                ContactIdentity.tenant_id == contact.tenant_id, ContactIdentity.contact_id == contact.id
            )
        ).all()
    )


def describe(ctx: Konsent, s: Session, contact: Contact, personal: bool) -> dict[str, object]:
    """A contact as staff see it; names and addresses only with `personal` (audited by the caller)."""
    out: dict[str, object] = {
        "id": contact.id,
        "created_at": contact.created_at.isoformat(),
        "locale": contact.locale,
        "has_contacted_us": contact.has_contacted_us,
        "unreachable": contact.unreachable,
        "consents": [
            {
                "purpose": r.purpose,
                "status": r.status,
                "text_version": r.text_version,
                "changed_at": r.changed_at.isoformat(),
            }
            for r in consent_rows(s, contact)
        ],
    }
    if personal:
        accounts = {
            a.id: a
            for a in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == contact.tenant_id))
        }
        out["name"] = contact_name(ctx, s, contact)
        out["identities"] = [
            {
                "channel_account_id": i.channel_account_id,
                "channel": accounts[i.channel_account_id].kind,
                "address": address_of(ctx, s, contact, i),
                "last_inbound_at": i.last_inbound_at.isoformat() if i.last_inbound_at else None,
            }
            for i in identities(s, contact)
        ]
    return out
