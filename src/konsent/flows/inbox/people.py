"""People instead of ids in the inbox: initials for the avatar, the number where no name is known,
and how many of the contact's messages nobody has read yet (M1, U5, #17)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.flows.contacts import address_of
from konsent.flows.context import Konsent
from konsent.store.tables import ChannelAccount, Contact, ContactIdentity, Conversation, Message


def initials(name: str) -> str:
    """'Erika Mustermann' -> 'EM', 'anna' -> 'A', '+49 170 …' -> '#' (no letters: a number)."""
    words = [w for w in name.replace("-", " ").split() if w[:1].isalpha()]
    if not words:
        return "#"
    first, last = words[0], words[-1]
    return (first[0] + (last[0] if len(words) > 1 else "")).upper()


def unread_counts(s: Session, tenant_id: int, conv_ids: Sequence[int]) -> dict[int, int]:
    """Per conversation: the contact's messages after an agent last opened it (or replied)."""
    if not conv_ids:
        return {}
    q = (
        select(Message.conversation_id, func.count())
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.tenant_id == tenant_id,
            Message.conversation_id.in_(list(conv_ids)),
            Message.direction == "in",
            or_(Conversation.agent_seen_at.is_(None), Message.created_at > Conversation.agent_seen_at),
        )
        .group_by(Message.conversation_id)
    )
    return {int(cid): int(n) for cid, n in s.execute(q).tuples() if cid is not None}


def mark_seen(s: Session, conv: Conversation, at: datetime) -> None:
    """An agent opened the conversation: what the contact wrote so far counts as read.

    No version bump: looking is no change, and must not make a colleague's open form stale."""
    s.execute(
        update(Conversation)
        .where(
            Conversation.tenant_id == conv.tenant_id,
            Conversation.id == conv.id,
            or_(Conversation.agent_seen_at.is_(None), Conversation.agent_seen_at < at),
        )
        .values(agent_seen_at=at)
        .execution_options(synchronize_session=False)
    )


def numbers_for_unnamed(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    pairs: Sequence[tuple[Contact, ChannelAccount]],
) -> dict[tuple[int, int], str]:
    """(contact id, account id) -> the phone number, for contacts without a display name on channels
    whose addresses are phone numbers (a chat id or page-scoped id means nothing to anyone)."""
    wanted = {
        (c.id, a.id)
        for c, a in pairs
        if c.wrapped_key is not None and ctx.adapter(a.kind).capabilities.address_is_phone
    }
    if not wanted:
        return {}
    contacts = {c.id: c for c, _ in pairs}
    out: dict[tuple[int, int], str] = {}
    rows = s.scalars(
        select(ContactIdentity).where(
            ContactIdentity.tenant_id == tenant_id,
            ContactIdentity.contact_id.in_(sorted({cid for cid, _ in wanted})),
        )
    )
    for ident in rows:
        if (ident.contact_id, ident.channel_account_id) not in wanted:
            continue
        try:
            out[(ident.contact_id, ident.channel_account_id)] = address_of(
                ctx, s, contacts[ident.contact_id], ident
            )
        except crypto.DecryptionError:
            continue
    return out
