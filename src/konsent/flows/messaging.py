"""Enqueueing outbound messages: the one door every sending path goes through (C5, invariant 1)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound, WindowClosed
from konsent.domain.purposes import Purpose, may_send
from konsent.flows.contacts import seal_for_contact, snapshot
from konsent.flows.context import Konsent
from konsent.store.tables import ChannelAccount, Contact, ContactIdentity, Message, OutboxRow
from konsent.store.types import utcnow


def parse_purpose(value: str) -> Purpose:
    try:
        return Purpose.parse(value)
    except ValueError as exc:
        raise InvalidInput(detail=str(exc)) from exc


def primary_identity(s: Session, contact: Contact, channel_account_id: int | None = None) -> ContactIdentity:
    """The identity to reach a contact on: the named account, else the one they wrote from last."""
    q = select(ContactIdentity).where(
        ContactIdentity.tenant_id == contact.tenant_id, ContactIdentity.contact_id == contact.id
    )
    if channel_account_id is not None:
        q = q.where(ContactIdentity.channel_account_id == channel_account_id)
    ident = s.scalars(q.order_by(ContactIdentity.last_inbound_at.desc().nulls_last())).first()
    if ident is None:
        raise NotFound(message="The contact cannot be reached on that channel.")
    return ident


def enqueue_message(
    ctx: Konsent,
    s: Session,
    contact: Contact,
    purpose: str,
    content: OutboundContent,
    *,
    channel_account_id: int | None = None,
    conversation_id: int | None = None,
    author: str = "",
    min_text_version: int = 0,
    at: datetime | None = None,
) -> Message:
    """Queue one message after `may_send` allowed it; raise NoLegalBasis otherwise (C5)."""
    at = at or utcnow()
    p = parse_purpose(purpose)
    if not content.text and not content.template:
        raise InvalidInput(detail="a message needs text or a template")
    decision = may_send(snapshot(s, contact), p, at, min_text_version)
    if not decision:
        raise NoLegalBasis(purpose=str(p), reason=decision.detail, reason_code=decision.reason)
    ident = primary_identity(s, contact, channel_account_id)
    account = s.get(ChannelAccount, ident.channel_account_id)
    assert account is not None and account.tenant_id == contact.tenant_id
    caps = ctx.adapter(account.kind).capabilities
    if len(content.text) > caps.max_text_len:
        raise InvalidInput(detail=f"text longer than {caps.max_text_len} characters for this channel")
    if caps.service_window_hours is not None and content.template is None:
        last = ident.last_inbound_at
        if last is None or at - last > timedelta(hours=caps.service_window_hours):
            raise WindowClosed(hours=caps.service_window_hours)
    msg = Message(
        tenant_id=contact.tenant_id,
        conversation_id=conversation_id,
        contact_id=contact.id,
        channel_account_id=account.id,
        direction="out",
        purpose=str(p),
        body_sealed=seal_for_contact(ctx, s, contact, "message", json.dumps(content.as_dict())),
        status="queued",
        author=author,
        created_at=at,
        updated_at=at,
    )
    s.add(msg)
    s.flush()
    s.add(
        OutboxRow(
            tenant_id=contact.tenant_id,
            message_id=msg.id,
            contact_id=contact.id,
            channel_account_id=account.id,
            purpose=str(p),
            min_text_version=min_text_version,
            max_attempts=ctx.settings.max_attempts,
            run_at=at,
            created_at=at,
        )
    )
    return msg


def message_content(ctx: Konsent, s: Session, contact: Contact, msg: Message) -> OutboundContent:
    """The content of a message (inbound text is stored in the same shape)."""
    from konsent.flows.contacts import open_for_contact

    return OutboundContent.from_dict(
        json.loads(open_for_contact(ctx, s, contact, "message", msg.body_sealed))
    )
