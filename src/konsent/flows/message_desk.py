"""The message desk: staff and API send, read and describe messages; withdraw for a contact; proof.

Owns `send_message` (through the legal-basis check), `get_message`, `describe_message`, `media_to_fetch`,
`conversation_messages`, `view_contact`, `staff_withdraw`, `contact_proof`: each one transaction, each
audited where personal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.channels.base import AccountConfig, OutboundContent
from konsent.domain import received
from konsent.domain.errors import InvalidInput, NotFound
from konsent.domain.interactive import Interactive
from konsent.domain.purposes import Purpose
from konsent.flows import audit, contacts
from konsent.flows.consent import grants as consent
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.outbound import messaging, templates
from konsent.flows.privacy import proof
from konsent.store.tables import Contact, Message
from konsent.store.types import utcnow


@dataclass(frozen=True)
class TemplateRef:
    """A registered template asked for by name and language, with its variables in order."""

    name: str
    language: str
    params: tuple[str, ...] = ()


def send_message(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    contact_id: int,
    purpose: str,
    text: str,
    channel_account_id: int | None = None,
    *,
    media_url: str | None = None,
    media_kind: str | None = None,
    template: TemplateRef | None = None,
    choices: Interactive | None = None,
) -> Message:
    """Queue a message for a contact through `may_send` (C5); 409 NoLegalBasis when refused.

    Text, media by https link (the text is its caption), or a template registered as
    APPROVED on the account the message goes out on; the message records which template
    and version it used (M1, CH3).
    """
    contact = contacts.get_contact(s, tenant_id, contact_id)
    if channel_account_id is not None:
        tenants.get_account(s, tenant_id, channel_account_id)
    p = messaging.parse_purpose(purpose)
    if p.is_marketing and p.topic not in {tp.slug for tp in tenants.topics(s, tenant_id, active_only=False)}:
        # A typo in the topic is bad input (422), not a missing consent (409).
        raise InvalidInput(
            "unknown topic {topic} in purpose {purpose}", topic=repr(p.topic), purpose=repr(purpose)
        )
    registered = None
    if template is not None:
        if text or media_url or (choices and (choices.buttons or choices.rows or choices.link)):
            raise InvalidInput(detail="send either a template or text and media, not both")
        ident = messaging.primary_identity(s, contact, channel_account_id)
        account = tenants.get_account(s, tenant_id, ident.channel_account_id)
        content, registered = templates.approved_content(
            ctx, s, account, template.name, template.language, list(template.params), purpose=purpose
        )
        channel_account_id = account.id
    else:
        content = OutboundContent(
            text=text, media_url=media_url or None, media_kind=media_kind or None,
            **(choices or Interactive()).parts(),
        )  # fmt: skip
    conv_id = None
    if purpose == "service":
        from konsent.store.tables import Conversation

        conv = s.scalars(
            select(Conversation)
            .where(Conversation.tenant_id == tenant_id, Conversation.contact_id == contact.id)
            .order_by(Conversation.last_message_at.desc())
        ).first()
        conv_id = conv.id if conv else None
    msg = messaging.enqueue_message(
        ctx,
        s,
        contact,
        purpose,
        content,
        channel_account_id=channel_account_id,
        conversation_id=conv_id,
        author=actor,
    )
    details: dict[str, Any] = {"purpose": purpose, "message": msg.id}
    if registered is not None:
        msg.template_id, msg.template_version = registered.id, registered.version
        details.update(template=registered.id, version=registered.version)
    audit.record(s, tenant_id, actor, "message.send", f"contact:{contact.id}", **details)
    return msg


def get_message(s: Session, tenant_id: int, message_id: int) -> Message:
    if not 0 < message_id < 2**63:
        raise NotFound()
    msg = s.get(Message, message_id)
    if msg is None or msg.tenant_id != tenant_id:
        raise NotFound()
    return msg


def describe_message(ctx: Konsent, s: Session, msg: Message, with_body: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": msg.id,
        "contact_id": msg.contact_id,
        "direction": msg.direction,
        "purpose": msg.purpose,
        "status": msg.status,
        "status_reason": msg.status_reason,
        "channel_account_id": msg.channel_account_id,
        "created_at": msg.created_at.isoformat(),
        "updated_at": msg.updated_at.isoformat(),
    }
    if with_body:
        contact = contacts.get_contact(s, msg.tenant_id, msg.contact_id)
        if contact.wrapped_key is not None:
            body = _body(ctx, s, contact, msg)  # opened once for text and attachment
            content = OutboundContent.from_dict(body)
            out["text"] = content.text
            if msg.direction == "out":  # what the contact could tap (CH5)
                out.update(api_interactive_view(content))
            out["has_media"] = bool(body.get("media_ref"))
            if msg.direction == "in":
                out["kind"] = str(body.get("kind") or "text")
                out["details"] = received.details_of(body)
                if body.get("ref"):
                    out["refers_to"] = str(body["ref"])
    return out


def api_interactive_view(content: OutboundContent) -> dict[str, Any]:
    """`buttons`, `list` and `link` of a sent message, in the shape the API accepts them."""
    out: dict[str, Any] = {}
    if content.buttons:
        out["buttons"] = [{"id": b.id, "title": b.title} for b in content.buttons]
    if content.rows:
        rows = [{"id": r.id, "title": r.title, "description": r.description} for r in content.rows]
        out["list"] = {"button": content.list_button, "rows": rows}
    if content.link is not None:
        out["link"] = {"title": content.link.title, "url": content.link.url}
    return out


def _body(ctx: Konsent, s: Session, contact: Contact, msg: Message) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(contacts.open_for_contact(ctx, s, contact, "message", msg.body_sealed))
    return data


def _media_ref(ctx: Konsent, s: Session, contact: Contact, msg: Message) -> str | None:
    ref = _body(ctx, s, contact, msg).get("media_ref")
    return str(ref) if ref else None


def media_to_fetch(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, message_id: int
) -> tuple[AccountConfig, str]:
    """The channel account and provider reference of a message's attachment (audited view, CH2)."""
    msg = get_message(s, tenant_id, message_id)
    contact = contacts.get_contact(s, tenant_id, msg.contact_id)
    ref = _media_ref(ctx, s, contact, msg) if contact.wrapped_key is not None else None
    if ref is None:
        raise NotFound(message="This message has no attachment.")
    account = tenants.get_account(s, tenant_id, msg.channel_account_id)
    audit.record(s, tenant_id, actor, "message.media.view", f"contact:{contact.id}", message=msg.id)
    return tenants.account_config(ctx, s, account), ref


def conversation_messages(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, limit: int = 200
) -> list[dict[str, Any]]:
    """A contact's messages, oldest first, with text (audited as a view of personal data)."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    rows = s.scalars(
        select(Message)
        .where(Message.tenant_id == tenant_id, Message.contact_id == contact.id)
        .order_by(Message.id.desc())
        .limit(limit)
    ).all()
    audit.record(s, tenant_id, actor, "contact.messages.view", f"contact:{contact.id}")
    return [describe_message(ctx, s, m, with_body=True) for m in reversed(rows)]


def view_contact(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, personal: bool
) -> dict[str, Any]:
    contact = contacts.get_contact(s, tenant_id, contact_id)
    if personal:
        audit.record(s, tenant_id, actor, "contact.view", f"contact:{contact.id}")
    return contacts.describe(ctx, s, contact, personal)


def staff_withdraw(
    s: Session, tenant_id: int, actor: str, contact_id: int, purposes: list[str] | None
) -> list[str]:
    """An agent records a withdrawal the contact made by phone, letter or e-mail (C4)."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    for p in purposes or []:
        try:
            if not Purpose.parse(p).is_marketing:
                raise InvalidInput(detail="only newsletter purposes can be withdrawn")
        except ValueError as exc:
            raise InvalidInput(detail=str(exc)) from exc
    done = consent.withdraw(s, contact, purposes, source=f"staff:{actor}", at=utcnow())
    audit.record(s, tenant_id, actor, "consent.withdraw", f"contact:{contact.id}", purposes=done)
    return done


def contact_proof(s: Session, tenant_id: int, actor: str, contact_id: int) -> dict[str, Any]:
    contact = contacts.get_contact(s, tenant_id, contact_id)
    audit.record(s, tenant_id, actor, "consent.proof.export", f"contact:{contact.id}")
    return proof.proof_document(s, contact)
