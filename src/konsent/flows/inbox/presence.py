"""Who else is replying in a conversation right now: a notice against two agents answering the
same contact at once (M1, #17).

While an agent types in the reply box their page says so every few seconds; each such note is
an `InboxEvent` of kind `typing:<user id>` through the live-update path (flows.inbox.live), so
every open page of that conversation, on any web process, shows "Anna is replying" at once,
and a page opened later finds the notes of the last `FRESH` seconds. Only staff ids are kept;
live events are pruned after an hour like all others.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.flows.inbox import live
from konsent.flows.inbox.listing import get_conversation, user_id
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.store.tables import InboxEvent, StaffUser
from konsent.store.types import utcnow

PREFIX = "typing:"
FRESH = timedelta(seconds=20)  # a note older than this no longer counts as "replying now"
MIN_GAP = timedelta(seconds=5)  # the page notes typing at most this often


def note_typing(s: Session, who: StaffMember, conversation_id: int, at: datetime | None = None) -> bool:
    """Record that the caller is writing a reply here; False when a note of theirs is still fresh."""
    staff.require(who.role, "messages.send")
    at = at or utcnow()
    conv = get_conversation(s, who, conversation_id)
    uid = user_id(who)
    if uid is None:
        return False
    kind = f"{PREFIX}{uid}"
    recent = s.scalars(
        select(InboxEvent.id).where(
            InboxEvent.tenant_id == who.tenant_id,
            InboxEvent.conversation_id == conv.id,
            InboxEvent.kind == kind,
            InboxEvent.created_at > at - MIN_GAP,
        )
    ).first()
    if recent is not None:
        return False
    live.record(s, who.tenant_id, conv.id, kind)
    return True


def replying_now(s: Session, who: StaffMember, conversation_id: int, at: datetime | None = None) -> list[str]:
    """The names of the other staff members who typed a reply here in the last `FRESH` seconds."""
    at = at or utcnow()
    me = user_id(who)
    kinds = s.scalars(
        select(InboxEvent.kind)
        .where(
            InboxEvent.tenant_id == who.tenant_id,
            InboxEvent.conversation_id == conversation_id,
            InboxEvent.kind.like(PREFIX + "%"),
            InboxEvent.created_at > at - FRESH,
        )
        .distinct()
    ).all()
    ids = {int(k[len(PREFIX) :]) for k in kinds if k[len(PREFIX) :].isdigit()} - {me}
    if not ids:
        return []
    users = s.scalars(
        select(StaffUser).where(StaffUser.tenant_id == who.tenant_id, StaffUser.id.in_(ids))
    ).all()
    return sorted(u.name or u.email for u in users)
