"""One conversation: its view (history, ticks, notes, consent panel, window) and the changes
agents make to it — reply, template, assign, state, snooze, notes, labels (M1, M2, S4)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain.content import require_valid
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.domain.interactive import Interactive
from konsent.domain.media import MEDIA_KINDS
from konsent.flows import audit
from konsent.flows.contacts import consent_rows, contact_name, open_for_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbox import csat, live, people, presence
from konsent.flows.inbox.composer import ComposerState, composer_state
from konsent.flows.inbox.listing import STATES, bump, get_conversation, visibility
from konsent.flows.inbox.thread import ThreadMessage, staff_names, thread_of
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.flows.outbound import templates
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.webhooks.events import emit, emit_closed
from konsent.store.tables import (
    BotSession,
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    ConversationNote,
    Message,
    StaffUser,
    Team,
)
from konsent.store.types import utcnow

_LABEL = re.compile(r"^[\w][\w -]{0,39}$")


# --- one conversation ------------------------------------------------------------------------------


@dataclass
class ConversationView:
    conversation: Conversation
    contact_id: int
    name: str
    channel: str
    channel_kind: str
    messages: list[ThreadMessage]
    notes: list[dict[str, Any]]
    labels: list[str]
    consents: list[dict[str, Any]]
    window_open: bool
    window_hours: int | None
    window_closes_at: datetime | None
    templates: bool
    fields: dict[str, str]
    earlier: list[
        tuple[int, str, datetime, str]
    ]  # the contact's other conversations: id, state, start, channel
    team_id: int | None
    assignee_id: int | None
    bot_state: str | None
    locale: str = ""  # the contact's language, for ordering the template picker
    media_kinds: tuple[str, ...] = ()  # what an agent may attach on this channel
    interactive: bool = False  # the channel shows reply buttons (else they go as numbered text)
    composer: ComposerState | None = None  # what may be sent now, and why not (#17)
    replying: list[str] = field(default_factory=list)  # other staff typing a reply right now
    number: str = ""  # the phone number where no name is known
    initials: str = ""


def view_conversation(
    ctx: Konsent, s: Session, who: StaffMember, conversation_id: int, now: datetime | None = None
) -> ConversationView:
    """The history, notes, consent panel and window state; the access is audited (M1, S4)."""
    now = now or utcnow()
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    acc = s.get(ChannelAccount, conv.channel_account_id)
    assert contact is not None and acc is not None
    shredded = contact.wrapped_key is None
    messages = thread_of(ctx, s, conv, contact)
    names = staff_names(s, who.tenant_id)
    notes = [
        {
            "author": names.get(n.author, n.author),
            "at": n.created_at,
            "text": "" if shredded else open_for_contact(ctx, s, contact, "note", n.body_sealed),
        }
        for n in s.scalars(
            select(ConversationNote)
            .where(ConversationNote.tenant_id == who.tenant_id, ConversationNote.conversation_id == conv.id)
            .order_by(ConversationNote.id)
        )
    ]
    labels = sorted(
        s.scalars(
            select(ConversationLabel.label).where(
                ConversationLabel.tenant_id == who.tenant_id, ConversationLabel.conversation_id == conv.id
            )
        ).all()
    )
    caps = ctx.adapter(acc.kind).capabilities
    ident = s.scalars(
        select(ContactIdentity).where(
            ContactIdentity.tenant_id == who.tenant_id,
            ContactIdentity.contact_id == contact.id,
            ContactIdentity.channel_account_id == acc.id,
        )
    ).first()
    closes = None
    window_open = True
    if caps.service_window_hours is not None:
        last = ident.last_inbound_at if ident else None
        closes = last + timedelta(hours=caps.service_window_hours) if last else None
        window_open = closes is not None and closes > now
    bot = s.scalars(select(BotSession).where(BotSession.conversation_id == conv.id)).one_or_none()
    people.mark_seen(s, conv, now)
    name = "" if shredded else contact_name(ctx, s, contact)
    number = (
        ""
        if name or shredded
        else people.numbers_for_unnamed(ctx, s, who.tenant_id, [(contact, acc)]).get((contact.id, acc.id), "")
    )
    audit.record(
        s, who.tenant_id, who.actor, "conversation.view", f"contact:{contact.id}", conversation=conv.id
    )
    return ConversationView(
        conversation=conv,
        contact_id=contact.id,
        name=name,
        number=number,
        initials=people.initials(name),
        composer=composer_state(
            s,
            contact,
            acc,
            window_open=window_open,
            window_hours=caps.service_window_hours,
            templates=caps.templates,
            at=now,
        ),
        replying=presence.replying_now(s, who, conv.id, now),
        channel=acc.name,
        channel_kind=acc.kind,
        messages=messages,
        notes=notes,
        labels=labels,
        consents=[
            {"purpose": r.purpose, "status": r.status, "changed_at": r.changed_at}
            for r in consent_rows(s, contact)
        ],
        window_open=window_open,
        window_hours=caps.service_window_hours,
        window_closes_at=closes,
        templates=caps.templates,
        media_kinds=tuple(k for k in MEDIA_KINDS if k in caps.media_kinds),
        interactive=caps.buttons,
        fields=_fields(ctx, s, contact),
        earlier=_earlier(s, who, conv),
        team_id=conv.team_id,
        assignee_id=conv.assignee_id,
        bot_state=bot.state if bot else None,
        locale=contact.locale or "",
    )


def _earlier(s: Session, who: StaffMember, conv: Conversation) -> list[tuple[int, str, datetime, str]]:
    q = (
        select(Conversation.id, Conversation.state, Conversation.started_at, ChannelAccount.name)
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .where(
            Conversation.tenant_id == who.tenant_id,
            Conversation.contact_id == conv.contact_id,
            Conversation.id != conv.id,
        )
    )
    cond = visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    return list(s.execute(q.order_by(Conversation.started_at.desc()).limit(20)).tuples())


def _fields(ctx: Konsent, s: Session, contact: Contact) -> dict[str, str]:
    from konsent.flows.inbox.bot import contact_fields

    return contact_fields(ctx, s, contact)


def withdraw_data_consent(s: Session, who: StaffMember, conversation_id: int, purpose: str) -> int:
    """Staff record the contact's withdrawal of a data consent; its fields are deleted (M2, C4)."""
    from konsent.flows.inbox.bot import withdraw_data_consent as withdraw

    staff.require(who.role, "messages.send")
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    assert contact is not None
    deleted = withdraw(s, contact, purpose, source="staff", actor=who.actor)
    audit.record(
        s, who.tenant_id, who.actor, "contact.withdraw_data", f"contact:{contact.id}", purpose=purpose
    )
    live.record(s, who.tenant_id, conv.id, "consent")
    return deleted


def reply(
    ctx: Konsent,
    s: Session,
    who: StaffMember,
    conversation_id: int,
    text: str,
    at: datetime | None = None,
    *,
    media_url: str = "",
    media_kind: str = "",
    choices: Interactive | None = None,
    media_filename: str = "",
) -> Message:
    """An agent answers, optionally with media by https link or with reply buttons, a list or a link
    button (numbered text where the channel has none); the bot stops (M1, M2, CH5)."""
    staff.require(who.role, "messages.send")
    at = at or utcnow()
    text = text.strip()
    media_url, media_kind = media_url.strip(), media_kind.strip()
    parts = (choices or Interactive()).parts()
    content = OutboundContent(
        text=text,
        media_url=media_url or None,
        media_kind=media_kind or None,
        media_filename=media_filename or None,
        **parts,
    )
    require_valid(content)  # before anything is looked up: a bad reply is 422 wherever it goes
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    assert contact is not None
    msg = enqueue_message(
        ctx,
        s,
        contact,
        "service",
        content,
        channel_account_id=conv.channel_account_id,
        conversation_id=conv.id,
        author=who.actor,
        at=at,
    )
    s.execute(
        update(Conversation)
        .where(Conversation.id == conv.id, Conversation.first_response_at.is_(None))
        .values(first_response_at=at)
        .execution_options(synchronize_session=False)
    )
    bump(s, conv, None, last_message_at=at, agent_seen_at=at)
    s.execute(
        update(BotSession)
        .where(BotSession.conversation_id == conv.id, BotSession.state == "running")
        .values(state="handover", updated_at=at)
    )
    audit.record(s, who.tenant_id, who.actor, "conversation.reply", f"contact:{contact.id}", message=msg.id)
    return msg


def reply_template(
    ctx: Konsent,
    s: Session,
    who: StaffMember,
    conversation_id: int,
    template: str,
    language: str,
    params: list[str],
    at: datetime | None = None,
) -> Message:
    """Outside the customer-service window: a template registered as APPROVED for the
    conversation's account, with exactly its variables; the message keeps its id and version (M1, CH3)."""
    staff.require(who.role, "messages.send")
    at = at or utcnow()
    template, language = template.strip(), language.strip()
    params = [p.strip() for p in params]
    require_valid(
        OutboundContent(template=template, template_language=language, template_params=tuple(params))
    )
    conv = get_conversation(s, who, conversation_id)
    acc = s.get(ChannelAccount, conv.channel_account_id)
    contact = s.get(Contact, conv.contact_id)
    assert acc is not None and contact is not None
    content, registered = templates.approved_content(ctx, s, acc, template, language, params)
    msg = enqueue_message(
        ctx,
        s,
        contact,
        "service",
        content,
        channel_account_id=conv.channel_account_id,
        conversation_id=conv.id,
        author=who.actor,
        at=at,
    )
    msg.template_id, msg.template_version = registered.id, registered.version
    bump(s, conv, None, last_message_at=at)
    audit.record(
        s, who.tenant_id, who.actor, "conversation.template", f"contact:{contact.id}", message=msg.id,
        template=registered.id, version=registered.version,
    )  # fmt: skip
    return msg


def reply_registered_template(
    ctx: Konsent, s: Session, who: StaffMember, conversation_id: int, template_id: int, params: list[str]
) -> Message:
    """The inbox picker's send: a registry entry by id, only one of this conversation's account (M1)."""
    conv = get_conversation(s, who, conversation_id)
    try:
        chosen = templates.get_template(s, who.tenant_id, template_id)
    except NotFound:
        chosen = None
    if chosen is None or chosen.channel_account_id != conv.channel_account_id:
        raise InvalidInput(detail=templates.NOT_REGISTERED)
    return reply_template(ctx, s, who, conv.id, chosen.name, chosen.language, params)


def assign(
    s: Session,
    who: StaffMember,
    conversation_id: int,
    *,
    assignee_id: int | None,
    team_id: int | None,
    expected_version: int | None = None,
) -> Conversation:
    """Assign to an agent and/or a team; two concurrent assignments are both recorded (M1)."""
    conv = get_conversation(s, who, conversation_id)
    if assignee_id is not None:
        user = s.scalars(
            select(StaffUser).where(StaffUser.tenant_id == who.tenant_id, StaffUser.id == assignee_id)
        ).one_or_none()
        if user is None or not staff.allowed(user.role, "inbox.use"):
            raise InvalidInput(detail="this person cannot work in the inbox")
    # Handing a conversation to another team is allowed; an agent then loses sight of it.
    team_q = select(Team.id).where(Team.tenant_id == who.tenant_id, Team.id == team_id)
    if team_id is not None and s.scalars(team_q).first() is None:
        raise InvalidInput(detail="unknown team")
    bump(s, conv, expected_version, assignee_id=assignee_id, team_id=team_id)
    live.record(s, who.tenant_id, conv.id, "assigned")
    emit(
        s,
        who.tenant_id,
        "conversation.assigned",
        {
            "conversation_id": conv.id,
            "contact_id": conv.contact_id,
            "assignee_id": assignee_id,
            "team_id": team_id,
        },
    )
    audit.record(
        s, who.tenant_id, who.actor, "conversation.assign", f"conversation:{conv.id}",
        assignee_id=assignee_id, team_id=team_id, version=conv.version,
    )  # fmt: skip
    return conv


def set_state(
    s: Session,
    who: StaffMember,
    conversation_id: int,
    state: str,
    *,
    expected_version: int | None = None,
    at: datetime | None = None,
    ctx: Konsent | None = None,
) -> Conversation:
    """open / pending / closed (M1); resolving asks for a rating when the tenant wants it and
    `ctx` is given to send it (flows.inbox.csat)."""
    if state not in STATES:
        raise InvalidInput(detail="state must be open, pending or closed")
    at = at or utcnow()
    conv = get_conversation(s, who, conversation_id)
    if state == "open" and conv.state == "closed":
        # A newer conversation of the same contact and channel may be open already.
        newer = s.scalars(
            select(Conversation.id).where(
                Conversation.tenant_id == conv.tenant_id,
                Conversation.contact_id == conv.contact_id,
                Conversation.channel_account_id == conv.channel_account_id,
                Conversation.state != "closed",
            )
        ).first()
        if newer is not None:
            raise Conflict(detail="this contact has a newer open conversation")
    was = conv.state
    bump(s, conv, expected_version, state=state, closed_at=at if state == "closed" else None)
    if ctx is not None and state == "closed" and was != "closed":
        csat.ask(ctx, s, conv, at)
    live.record(s, who.tenant_id, conv.id, "state")
    if state == "closed" and was != "closed":
        emit_closed(s, conv, by=who.actor)
    audit.record(s, who.tenant_id, who.actor, "conversation.state", f"conversation:{conv.id}", state=state)
    return conv


def snooze(
    s: Session, who: StaffMember, conversation_id: int, until: datetime | None, now: datetime | None = None
) -> Conversation:
    """Hide a conversation until a time; a new message from the contact wakes it (M1)."""
    now = now or utcnow()
    if until is not None and (until <= now or until > now + timedelta(days=365)):
        raise InvalidInput(detail="snooze until a time within the next year")
    conv = get_conversation(s, who, conversation_id)
    bump(s, conv, None, snoozed_until=until)
    live.record(s, who.tenant_id, conv.id, "snoozed")
    audit.record(s, who.tenant_id, who.actor, "conversation.snooze", f"conversation:{conv.id}")
    return conv


def add_note(ctx: Konsent, s: Session, who: StaffMember, conversation_id: int, text: str) -> ConversationNote:
    """An internal note the contact never sees; sealed with the contact's key (M1, S1)."""
    text = text.strip()
    if not text or len(text) > 4000:
        raise InvalidInput(detail="a note needs 1 to 4000 characters")
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    assert contact is not None
    note = ConversationNote(
        tenant_id=who.tenant_id,
        conversation_id=conv.id,
        author=who.actor,
        body_sealed=seal_for_contact(ctx, s, contact, "note", text),
    )
    s.add(note)
    bump(s, conv, None)
    live.record(s, who.tenant_id, conv.id, "note")
    audit.record(s, who.tenant_id, who.actor, "conversation.note", f"contact:{contact.id}")
    return note


def set_labels(s: Session, who: StaffMember, conversation_id: int, labels: list[str]) -> list[str]:
    clean = sorted({lb.strip().lower() for lb in labels if lb.strip()})
    if len(clean) > 20 or any(not _LABEL.match(lb) for lb in clean):
        raise InvalidInput(detail="labels are up to 20 short words (letters, digits, - and spaces)")
    conv = get_conversation(s, who, conversation_id)
    current = {
        cl.label: cl
        for cl in s.scalars(
            select(ConversationLabel).where(
                ConversationLabel.tenant_id == who.tenant_id, ConversationLabel.conversation_id == conv.id
            )
        )
    }
    for name, row in current.items():
        if name not in clean:
            s.delete(row)
    for name in clean:
        if name not in current:
            s.add(ConversationLabel(tenant_id=who.tenant_id, conversation_id=conv.id, label=name))
    bump(s, conv, None)
    live.record(s, who.tenant_id, conv.id, "labels")
    return clean
