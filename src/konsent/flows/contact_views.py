"""The admin's contact list and contact page: consent states per topic, ledger, thread (C3, S4).

Owns `contact_list` (states and channels, no names or numbers) and `contact_page` (with `personal`,
audited as a view of personal data in the same transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain import received
from konsent.flows import audit, contacts, message_desk
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.privacy import proof
from konsent.store.tables import ChannelAccount, Consent, Contact, ContactIdentity, Message


@dataclass(frozen=True)
class ContactRow:
    """One line of the contact list: states and channels, no names or numbers."""

    id: int
    created_at: datetime
    last_activity_at: datetime | None
    has_contacted_us: bool
    channels: list[str]
    active: list[str]
    withdrawn: list[str]


def contact_list(
    s: Session, tenant_id: int, limit: int = 50, offset: int = 0, only: Any | None = None
) -> list[ContactRow]:
    return contact_rows(s, tenant_id, contacts.list_contacts(s, tenant_id, limit, offset, only))


def contact_rows(s: Session, tenant_id: int, rows: list[Contact]) -> list[ContactRow]:
    """The contact list's rows for these contacts (a page of the list or a search result)."""
    ids = [c.id for c in rows]
    if not ids:
        return []
    chans: dict[int, set[str]] = {}
    for contact_id, kind in s.execute(  # one query, plain rows: the list page is read often (M5)
        select(ContactIdentity.contact_id, ChannelAccount.kind)
        .outerjoin(
            ChannelAccount,
            (ChannelAccount.id == ContactIdentity.channel_account_id)
            & (ChannelAccount.tenant_id == tenant_id),
        )
        .where(ContactIdentity.tenant_id == tenant_id, ContactIdentity.contact_id.in_(ids))
    ):
        chans.setdefault(contact_id, set()).add(kind or "?")
    states: dict[int, dict[str, list[str]]] = {}
    for contact_id, status, purpose in s.execute(
        select(Consent.contact_id, Consent.status, Consent.purpose).where(
            Consent.tenant_id == tenant_id, Consent.contact_id.in_(ids)
        )
    ):
        states.setdefault(contact_id, {}).setdefault(status, []).append(purpose)
    return [
        ContactRow(
            c.id,
            c.created_at,
            c.last_activity_at,
            c.has_contacted_us,
            sorted(chans.get(c.id, ())),
            sorted(states.get(c.id, {}).get("active", [])),
            sorted(states.get(c.id, {}).get("withdrawn", [])),
        )
        for c in rows
    ]


@dataclass(frozen=True)
class TopicState:
    purpose: str
    names: dict[str, str]
    status: str  # active / withdrawn / none
    text_version: int | None
    changed_at: datetime | None


@dataclass
class ContactPage:
    id: int
    created_at: datetime
    locale: str | None
    has_contacted_us: bool
    unreachable: bool
    topics: list[TopicState]
    ledger: list[dict[str, Any]]
    personal: bool
    name: str = ""
    identities: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


def _thread_item(ctx: Konsent, s: Session, m: Message) -> dict[str, Any]:
    d = message_desk.describe_message(ctx, s, m, with_body=True)
    shown = {"kind": d.get("kind"), "details": d.get("details"), "ref": d.get("refers_to")}
    return {**d, "author": m.author, "received": received.view_of(shown)}


def contact_page(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, personal: bool
) -> ContactPage:
    """Everything the contact page shows; with `personal`, audited as a view of personal data (S4)."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    rows = {r.purpose: r for r in contacts.consent_rows(s, contact)}
    states: list[TopicState] = []
    for t in tenants.topics(s, tenant_id, active_only=False):
        purpose = f"newsletter:{t.slug}"
        r = rows.pop(purpose, None)
        states.append(
            TopicState(
                purpose,
                dict(t.names),
                r.status if r else "none",
                r.text_version if r else None,
                r.changed_at if r else None,
            )
        )
    for purpose, r in sorted(rows.items()):  # purposes of topics that no longer exist
        states.append(TopicState(purpose, {}, r.status, r.text_version, r.changed_at))
    ledger = [
        {"seq": e.seq, "purpose": e.purpose, "action": e.action, "recorded_at": e.created_at, **e.payload}
        for e in proof.ledger_entries(s, contact)
    ]
    page = ContactPage(
        contact.id,
        contact.created_at,
        contact.locale,
        contact.has_contacted_us,
        contact.unreachable,
        states,
        ledger,
        personal,
    )
    if personal and contact.wrapped_key is not None:
        audit.record(s, tenant_id, actor, "contact.view", f"contact:{contact.id}")
        described = contacts.describe(ctx, s, contact, personal=True)
        page.name = str(described.get("name") or "")
        page.identities = list(described.get("identities") or [])  # type: ignore[call-overload]
        msgs = s.scalars(
            select(Message)
            .where(Message.tenant_id == tenant_id, Message.contact_id == contact.id)
            .order_by(Message.id.desc())
            .limit(200)
        ).all()
        page.messages = [_thread_item(ctx, s, m) for m in reversed(msgs)]
    return page
