"""Canned replies with variables: {name}, {agent}, {company} (M1)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.domain.fill import fill
from konsent.flows.contacts import contact_name
from konsent.flows.context import Konsent
from konsent.flows.inbox.listing import get_conversation
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.store.tables import (
    CannedReply,
    Contact,
    Tenant,
)

_VAR = re.compile(r"\{([a-z_]{1,30})\}")

# --- canned replies --------------------------------------------------------------------------------


def canned_replies(s: Session, tenant_id: int) -> list[CannedReply]:
    return list(
        s.scalars(
            select(CannedReply).where(CannedReply.tenant_id == tenant_id).order_by(CannedReply.shortcut)
        )
    )


def save_canned_reply(s: Session, who: StaffMember, shortcut: str, title: str, body: str) -> CannedReply:
    """Create or replace a canned reply; variables: {name}, {agent}, {company}."""
    staff.require(who.role, "canned.manage")
    shortcut = shortcut.strip().lower()
    if not re.fullmatch(r"[a-z0-9_-]{1,40}", shortcut):
        raise InvalidInput(detail="a shortcut is 1 to 40 characters of a-z, 0-9, - and _")
    if not title.strip() or len(title) > 200 or not body.strip() or len(body) > 4096:
        raise InvalidInput(detail="a canned reply needs a title and a text of at most 4096 characters")
    row = s.scalars(
        select(CannedReply).where(CannedReply.tenant_id == who.tenant_id, CannedReply.shortcut == shortcut)
    ).one_or_none()
    if row is None:
        row = CannedReply(tenant_id=who.tenant_id, shortcut=shortcut)
        s.add(row)
    row.title = title.strip()
    row.body = body.strip()
    s.flush()
    return row


def delete_canned_reply(s: Session, who: StaffMember, reply_id: int) -> None:
    staff.require(who.role, "canned.manage")
    row = s.scalars(
        select(CannedReply).where(CannedReply.tenant_id == who.tenant_id, CannedReply.id == reply_id)
    ).one_or_none()
    if row is None:
        raise NotFound()
    s.delete(row)


def fill_variables(body: str, variables: dict[str, str]) -> str:
    """Replace {name}, {agent}, {company}; unknown variables stay visible for the agent to fix;
    an empty value leaves no gap ("Hallo," never "Hallo ,")."""
    return fill(body, _VAR, lambda m: variables.get(m.group(1)))


def canned_for(ctx: Konsent, s: Session, who: StaffMember, conversation_id: int) -> list[dict[str, str]]:
    """The tenant's canned replies with this conversation's variables filled in."""
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    tenant = s.get(Tenant, who.tenant_id)
    assert contact is not None and tenant is not None
    name = contact_name(ctx, s, contact) if contact.wrapped_key is not None else ""
    agent = (who.user.name or who.user.email) if who.user is not None else ""
    variables = {"name": name, "agent": agent, "company": tenant.name}
    return [
        {"shortcut": c.shortcut, "title": c.title, "text": fill_variables(c.body, variables)}
        for c in canned_replies(s, who.tenant_id)
    ]
