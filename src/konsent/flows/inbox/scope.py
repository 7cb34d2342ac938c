"""Which contacts a staff member may see: the one rule every page and API operation uses (S3, #13).

Owners, admins, the data-protection officer and viewers see every contact of their tenant
(viewers without names and numbers). An agent sees a contact only if the contact has a
conversation the agent may open in the inbox (their teams' conversations, and unrouted ones
where the tenant allows that): so a contact imported without a conversation, or one who
only ever wrote to another team, is invisible to the agent everywhere: contact list,
contact page, messages, media, exports, privacy actions, live events.

`web.scope_guard` applies `may_see` to every route with a `contact_id` or `message_id` in its
path; lists filter with `contact_filter`; routes that take a contact in their body call
`require_contact` themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import NotFound
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.store.tables import Contact, Conversation, Message


def sees_every_contact(who: StaffMember) -> bool:
    return staff.allowed(who.role, "contacts.all_teams")


def contact_filter(s: Session, who: StaffMember) -> Any | None:
    """A WHERE condition on `Contact` for this caller; None when every contact is visible."""
    if sees_every_contact(who):
        return None
    if not staff.allowed(who.role, "inbox.use"):
        return Contact.id < 0  # a role that neither sees all nor works the inbox sees no one
    visible = select(Conversation.contact_id).where(Conversation.tenant_id == who.tenant_id)
    cond = inbox.visibility(s, who)
    if cond is not None:
        visible = visible.where(cond)
    return Contact.id.in_(visible)


def contact_in_scope(s: Session, who: StaffMember, contact_id: int) -> bool:
    """Whether this caller may see this contact (of their own tenant)."""
    if not 0 < contact_id < 2**63:
        return False
    q = select(Contact.id).where(Contact.tenant_id == who.tenant_id, Contact.id == contact_id)
    cond = contact_filter(s, who)
    if cond is not None:
        q = q.where(cond)
    return s.scalars(q).first() is not None


def require_contact(s: Session, who: StaffMember, contact_id: int) -> None:
    """NotFound (as for another tenant's contact) unless this caller may see the contact."""
    if not contact_in_scope(s, who, contact_id):
        raise NotFound()


def message_contact(s: Session, tenant_id: int, message_id: int) -> int | None:
    if not 0 < message_id < 2**63:
        return None
    return s.scalars(
        select(Message.contact_id).where(Message.tenant_id == tenant_id, Message.id == message_id)
    ).first()


def _live(s: Session, tenant_id: int, contact_id: int) -> bool:
    """A contact of this tenant that is not erased: only for such a one is there anything to hide
    (for others the route gives its own answer, e.g. 404, or 403 for a role without the right)."""
    if not 0 < contact_id < 2**63:
        return False
    return (
        s.scalars(
            select(Contact.id).where(
                Contact.tenant_id == tenant_id, Contact.id == contact_id, Contact.erased_at.is_(None)
            )
        ).first()
        is not None
    )


def may_see(
    s: Session, who: StaffMember, contact_id: int | None = None, message_id: int | None = None
) -> bool:
    """The guard's question: may this caller reach this contact / this message's contact?"""
    if sees_every_contact(who):
        return True
    if (
        contact_id is not None
        and _live(s, who.tenant_id, contact_id)
        and not contact_in_scope(s, who, contact_id)
    ):
        return False
    if message_id is not None:
        owner = message_contact(s, who.tenant_id, message_id)
        if owner is None or not contact_in_scope(s, who, owner):
            return False
    return True


def visible_conversation_ids(s: Session, who: StaffMember, ids: set[int]) -> set[int]:
    """Which of these conversations the caller may see (live inbox events, S3)."""
    if not ids:
        return set()
    q = select(Conversation.id).where(Conversation.tenant_id == who.tenant_id, Conversation.id.in_(ids))
    cond = inbox.visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    return set(s.scalars(q).all())
