"""A conversation's messages as staff read them: text, buttons, media, sent templates with
their text and buttons, agents' attachments, what the contact sent (M1, CH5, #17)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain import interactive
from konsent.domain import received as received_kinds
from konsent.flows.contacts import open_for_contact
from konsent.flows.context import Konsent
from konsent.store.tables import Contact, Conversation, Message, MessageTemplate, StaffUser

_VAR = re.compile(r"\{\{\s*(\d+)\s*\}\}")


@dataclass
class SentTemplate:
    """An approved template as the contact saw it: header, body with its values, buttons."""

    name: str
    language: str
    header: str
    body: str
    buttons: list[str]


@dataclass
class ThreadMessage:
    id: int
    direction: str
    text: str
    buttons: list[str]
    status: str
    author: str
    at: datetime
    has_media: bool = False
    media_url: str = ""  # outbound media: the company's link, shown to staff
    received: received_kinds.Received | None = None  # a location, card, reaction, order ... (CH5)
    template: SentTemplate | None = None
    attachment_id: int | None = None  # an agent's uploaded file, served to staff only
    attachment_kind: str = ""
    attachment_name: str = ""
    status_reason: str = ""
    rows: list[str] = field(default_factory=list)  # an outbound list's row titles (CH5)
    link: tuple[str, str] | None = None  # an outbound link button: (title, https address)
    answer: str = ""  # the option a contact's "2" or title names, of the last message offering some


def staff_names(s: Session, tenant_id: int) -> dict[str, str]:
    """'user:12' -> the staff member's name, for showing who wrote what."""
    return {
        f"user:{u.id}": (u.name or u.email)
        for u in s.scalars(select(StaffUser).where(StaffUser.tenant_id == tenant_id))
    }


def fill(text: str, params: list[str]) -> str:
    """A template text with {{n}} replaced by the n-th value (left as is where none was given)."""
    return _VAR.sub(
        lambda m: params[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(params) else m.group(0), text
    )


def _templates(s: Session, conv: Conversation, msgs: list[Message]) -> dict[Any, MessageTemplate]:
    """The registry entries of the templates in this thread, by id and by (name, language)."""
    q = select(MessageTemplate).where(
        MessageTemplate.tenant_id == conv.tenant_id,
        MessageTemplate.channel_account_id == conv.channel_account_id,
    )
    out: dict[Any, MessageTemplate] = {}
    if not any(m.direction == "out" for m in msgs):
        return out
    for row in s.scalars(q):
        out[row.id] = row
        out[(row.name, row.language)] = row
    return out


def _sent_template(
    content: OutboundContent, msg: Message, registry: dict[Any, MessageTemplate]
) -> SentTemplate:
    params = list(content.template_params)
    row = registry.get(msg.template_id) if msg.template_id else None
    row = row or registry.get((content.template or "", content.template_language or ""))
    if row is None:  # no longer in the registry: at least its name and the values sent
        return SentTemplate(
            content.template or "", content.template_language or "", "", " · ".join(params), []
        )
    return SentTemplate(
        row.name, row.language, fill(row.header, params), fill(row.body, params), list(row.buttons or [])
    )


def thread_of(
    ctx: Konsent, s: Session, conv: Conversation, contact: Contact, limit: int = 500
) -> list[ThreadMessage]:
    """The newest `limit` messages of a conversation in the order konsent received or queued them,
    oldest first, opened for staff."""
    shredded = contact.wrapped_key is None
    msgs = list(
        s.scalars(
            select(Message)
            .where(Message.tenant_id == conv.tenant_id, Message.conversation_id == conv.id)
            .order_by(Message.id.desc())  # arrival order: a provider time in whole seconds can precede ours
            .limit(limit)
        ).all()
    )
    msgs.reverse()
    names = staff_names(s, conv.tenant_id)
    registry = _templates(s, conv, msgs)
    by_provider_id: dict[str, str] = {}
    offered: list[str] = []  # the options of the newest outbound message: buttons, rows or numbered
    thread = []
    for m in msgs:
        body = {} if shredded else json.loads(open_for_contact(ctx, s, contact, "message", m.body_sealed))
        if m.provider_id:
            by_provider_id[m.provider_id] = str(body.get("text") or "")
        content = OutboundContent.from_dict(body)
        text = content.text or (f"▶ {body['payload']}" if body.get("payload") else "")
        if m.direction == "out":
            offered = [b.title for b in content.buttons] or [r.title for r in content.rows]
            offered = offered or list(content.numbered)
        answer = ""
        if m.direction == "in" and (body.get("kind") or "text") == "text":
            answer = interactive.picked(offered, content.text)
        attachment = body.get("attachment") or {}
        thread.append(
            ThreadMessage(
                m.id,
                m.direction,
                text,
                [b.title for b in content.buttons],
                m.status,
                names.get(m.author, m.author),
                m.created_at,
                bool(body.get("media_ref")),
                content.media_url or "",
                received_kinds.view_of(body, by_provider_id) if m.direction == "in" else None,
                template=_sent_template(content, m, registry) if content.template else None,
                attachment_id=int(attachment["id"]) if attachment.get("id") else None,
                attachment_kind=str(attachment.get("kind") or ""),
                attachment_name=str(attachment.get("name") or ""),
                status_reason=m.status_reason if m.status in ("failed", "cancelled") else "",
                rows=[r.title for r in content.rows],
                link=(content.link.title, content.link.url) if content.link else None,
                answer=answer if answer.casefold() != text.strip().casefold() else "",
            )
        )
    return thread
