"""The agent inbox: list, view, reply, assign, states, snooze, notes, labels, canned replies (M1).

Every change bumps the conversation's `version` with an atomic UPDATE, so two agents
acting at once are both recorded and a stale form is refused (409), never lost.
Every change also appends an `InboxEvent`; live pages follow those (flows.live).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import phonenumbers
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows import audit, live, staff
from konsent.flows.contacts import consent_rows, contact_name, open_for_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.messaging import enqueue_message, message_content
from konsent.flows.teams import team_ids_of
from konsent.store.tables import (
    BotSession,
    CannedReply,
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    ConversationNote,
    Message,
    StaffUser,
    Team,
    Tenant,
)
from konsent.store.types import utcnow

STATES = ("open", "pending", "closed")
PAGE = 50
SEARCH_SCAN = 2000  # names are sealed: a name search decrypts at most this many recent conversations
_LABEL = re.compile(r"^[\w][\w -]{0,39}$")
_VAR = re.compile(r"\{([a-z_]{1,30})\}")


class StaffMember(Protocol):
    """Who acts: web.deps.Caller fits."""

    @property
    def tenant_id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def user(self) -> StaffUser | None: ...


def _user_id(who: StaffMember) -> int | None:
    return who.user.id if who.user is not None else None


def visible_teams(s: Session, who: StaffMember) -> set[int] | None:
    """None: every conversation; else the team ids an agent may see (S3)."""
    staff.require(who.role, "inbox.use")
    if staff.allowed(who.role, "inbox.all_teams"):
        return None
    uid = _user_id(who)
    return team_ids_of(s, who.tenant_id, uid) if uid is not None else set()


def _agents_see_unrouted(s: Session, tenant_id: int) -> bool:
    tenant = s.get(Tenant, tenant_id)
    return bool(tenant and tenant.settings.get("agents_see_unrouted", True))


def set_agents_see_unrouted(s: Session, who: StaffMember, on: bool) -> None:
    """Whether agents also see conversations no team has yet (S3); audited."""
    staff.require(who.role, "teams.manage")
    tenant = s.get(Tenant, who.tenant_id)
    assert tenant is not None
    tenant.settings = {**tenant.settings, "agents_see_unrouted": bool(on)}
    audit.record(
        s, who.tenant_id, who.actor, "settings.agents_see_unrouted", f"tenant:{who.tenant_id}", on=on
    )


def agents_see_unrouted(s: Session, tenant_id: int) -> bool:
    return _agents_see_unrouted(s, tenant_id)


def _visibility(s: Session, who: StaffMember) -> Any:
    teams = visible_teams(s, who)
    if teams is None:
        return None
    cond = Conversation.team_id.in_(teams) if teams else Conversation.id < 0
    if _agents_see_unrouted(s, who.tenant_id):
        cond = or_(cond, Conversation.team_id.is_(None))
    return cond


def get_conversation(s: Session, who: StaffMember, conversation_id: int) -> Conversation:
    """A conversation the caller may open; another tenant's or team's is NotFound (S3, invariant 4)."""
    q = select(Conversation).where(
        Conversation.tenant_id == who.tenant_id, Conversation.id == conversation_id
    )
    cond = _visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    conv = s.scalars(q).one_or_none()
    if conv is None:
        raise NotFound()
    return conv


# --- the list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    state: str | None = "open"  # None: every state
    team_id: int | None = None
    assignee: str | None = None  # "me", "none" or a user id
    channel_account_id: int | None = None
    label: str | None = None
    q: str = ""
    snoozed: bool = False  # show snoozed conversations instead of hiding them


@dataclass
class InboxRow:
    id: int
    contact_id: int
    name: str
    channel: str
    state: str
    team: str
    assignee: str
    labels: list[str]
    last_message_at: datetime
    snoozed_until: datetime | None
    version: int


@dataclass
class InboxPage:
    rows: list[InboxRow]
    next_cursor: str | None
    filters: InboxFilter = field(default_factory=InboxFilter)


def _cursor(conv_at: datetime, conv_id: int) -> str:
    return f"{conv_at.timestamp():.6f}_{conv_id}"


def _parse_cursor(value: str) -> tuple[datetime, int] | None:
    try:
        ts, cid = value.split("_", 1)
        return datetime.fromtimestamp(float(ts), tz=utcnow().tzinfo), int(cid)
    except ValueError:
        return None


def list_conversations(
    ctx: Konsent,
    s: Session,
    who: StaffMember,
    f: InboxFilter,
    *,
    before: str | None = None,
    limit: int = PAGE,
    now: datetime | None = None,
) -> InboxPage:
    """One page of the inbox, newest activity first, with keyset paging (M1)."""
    now = now or utcnow()
    q = select(Conversation).where(Conversation.tenant_id == who.tenant_id)
    cond = _visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    if f.state:
        if f.state not in STATES:
            raise InvalidInput(detail="unknown state")
        q = q.where(Conversation.state == f.state)
    if f.team_id is not None:
        q = q.where(Conversation.team_id == f.team_id)
    if f.assignee == "me":
        q = q.where(Conversation.assignee_id == (_user_id(who) or -1))
    elif f.assignee == "none":
        q = q.where(Conversation.assignee_id.is_(None))
    elif f.assignee:
        if not f.assignee.isdigit():
            raise InvalidInput(detail="unknown assignee")
        q = q.where(Conversation.assignee_id == int(f.assignee))
    if f.channel_account_id is not None:
        q = q.where(Conversation.channel_account_id == f.channel_account_id)
    if f.label:
        q = q.where(
            exists().where(
                ConversationLabel.tenant_id == who.tenant_id,
                ConversationLabel.conversation_id == Conversation.id,
                ConversationLabel.label == f.label,
            )
        )
    if f.snoozed:
        q = q.where(Conversation.snoozed_until > now)
    else:
        q = q.where(or_(Conversation.snoozed_until.is_(None), Conversation.snoozed_until <= now))
    needle = f.q.strip()
    name_search = False
    if needle:
        ids = _search_ids(ctx, s, who.tenant_id, needle)
        if ids is not None:
            q = q.where(Conversation.id.in_(ids) if ids else Conversation.id < 0)
        else:
            name_search = True
    if before and (cur := _parse_cursor(before)):
        at, cid = cur
        q = q.where(
            or_(
                Conversation.last_message_at < at,
                and_(Conversation.last_message_at == at, Conversation.id < cid),
            )
        )
    q = q.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    limit = max(1, min(limit, 200))
    if name_search:
        convs = _name_filter(ctx, s, list(s.scalars(q.limit(SEARCH_SCAN)).all()), needle.casefold())
        more = len(convs) > limit
        convs = convs[:limit]
    else:
        convs = list(s.scalars(q.limit(limit + 1)).all())
        more = len(convs) > limit
        convs = convs[:limit]
    rows = _rows(ctx, s, who.tenant_id, convs)
    nxt = _cursor(convs[-1].last_message_at, convs[-1].id) if more and convs else None
    return InboxPage(rows, nxt, f)


def record_list_view(s: Session, who: StaffMember, page: InboxPage) -> None:
    """The list shows contacts' names: record which contacts were shown, and to whom (S4)."""
    if page.rows:
        audit.record(
            s, who.tenant_id, who.actor, "inbox.list", "contacts",
            contacts=sorted({r.contact_id for r in page.rows}),
        )  # fmt: skip


def _search_ids(ctx: Konsent, s: Session, tenant_id: int, needle: str) -> list[int] | None:
    """Conversation ids for '#id' or a phone number (blind index); None means: search names."""
    if needle.startswith("#") and needle[1:].isdigit():
        return [int(needle[1:])]
    compact = re.sub(r"[\s()/-]", "", needle)
    if re.fullmatch(r"\+?\d{6,15}", compact):
        address = _e164(compact)
        contact_ids: set[int] = set()
        for acc in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id)):
            idx = ctx.keys.index(s, tenant_id, acc.kind, address)
            contact_ids.update(
                s.scalars(
                    select(ContactIdentity.contact_id).where(
                        ContactIdentity.tenant_id == tenant_id,
                        ContactIdentity.channel_account_id == acc.id,
                        ContactIdentity.address_index == idx,
                    )
                ).all()
            )
        if not contact_ids:
            return []
        return list(
            s.scalars(
                select(Conversation.id).where(
                    Conversation.tenant_id == tenant_id, Conversation.contact_id.in_(contact_ids)
                )
            ).all()
        )
    return None


def _e164(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number, "DE")  # national numbers as a German office types them
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _name_filter(ctx: Konsent, s: Session, convs: list[Conversation], needle: str) -> list[Conversation]:
    contacts = _contacts(s, convs)
    out = []
    for c in convs:
        contact = contacts.get(c.contact_id)
        if contact is not None and needle in contact_name(ctx, s, contact).casefold():
            out.append(c)
    return out


def _contacts(s: Session, convs: list[Conversation]) -> dict[int, Contact]:
    ids = {c.contact_id for c in convs}
    if not ids:
        return {}
    return {c.id: c for c in s.scalars(select(Contact).where(Contact.id.in_(ids))).all()}


def _rows(ctx: Konsent, s: Session, tenant_id: int, convs: list[Conversation]) -> list[InboxRow]:
    if not convs:
        return []
    contacts = _contacts(s, convs)
    accounts = {
        a.id: a for a in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id))
    }
    teams = {t.id: t for t in s.scalars(select(Team).where(Team.tenant_id == tenant_id))}
    users = {u.id: u for u in s.scalars(select(StaffUser).where(StaffUser.tenant_id == tenant_id))}
    labels: dict[int, list[str]] = {}
    for cl in s.scalars(
        select(ConversationLabel).where(
            ConversationLabel.tenant_id == tenant_id,
            ConversationLabel.conversation_id.in_([c.id for c in convs]),
        )
    ):
        labels.setdefault(cl.conversation_id, []).append(cl.label)
    out = []
    for c in convs:
        contact = contacts.get(c.contact_id)
        acc = accounts.get(c.channel_account_id)
        team = teams.get(c.team_id) if c.team_id else None
        user = users.get(c.assignee_id) if c.assignee_id else None
        out.append(
            InboxRow(
                id=c.id,
                contact_id=c.contact_id,
                name=(contact_name(ctx, s, contact) if contact else "") or f"#{c.contact_id}",
                channel=acc.name if acc else "",
                state=c.state,
                team=team.name if team else "",
                assignee=(user.name or user.email) if user else "",
                labels=sorted(labels.get(c.id, [])),
                last_message_at=c.last_message_at,
                snoozed_until=c.snoozed_until,
                version=c.version,
            )
        )
    return out


# --- one conversation ------------------------------------------------------------------------------


@dataclass
class ThreadMessage:
    id: int
    direction: str
    text: str
    buttons: list[str]
    status: str
    author: str
    at: datetime


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
    msgs = s.scalars(
        select(Message)
        .where(Message.tenant_id == who.tenant_id, Message.conversation_id == conv.id)
        .order_by(Message.created_at, Message.id)
        .limit(500)
    ).all()
    thread = []
    for m in msgs:
        content = OutboundContent() if shredded else message_content(ctx, s, contact, m)
        thread.append(
            ThreadMessage(
                m.id,
                m.direction,
                content.text,
                [b.title for b in content.buttons],
                m.status,
                m.author,
                m.created_at,
            )
        )
    notes = [
        {
            "author": n.author,
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
    audit.record(
        s, who.tenant_id, who.actor, "conversation.view", f"contact:{contact.id}", conversation=conv.id
    )
    return ConversationView(
        conversation=conv,
        contact_id=contact.id,
        name="" if shredded else contact_name(ctx, s, contact),
        channel=acc.name,
        channel_kind=acc.kind,
        messages=thread,
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
        fields=_fields(ctx, s, contact),
        earlier=_earlier(s, who, conv),
        team_id=conv.team_id,
        assignee_id=conv.assignee_id,
        bot_state=bot.state if bot else None,
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
    cond = _visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    return list(s.execute(q.order_by(Conversation.started_at.desc()).limit(20)).tuples())


def _fields(ctx: Konsent, s: Session, contact: Contact) -> dict[str, str]:
    from konsent.flows.bot import contact_fields

    return contact_fields(ctx, s, contact)


def withdraw_data_consent(s: Session, who: StaffMember, conversation_id: int, purpose: str) -> int:
    """Staff record the contact's withdrawal of a data consent; its fields are deleted (M2, C4)."""
    from konsent.flows.bot import withdraw_data_consent as withdraw

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


# --- changes ---------------------------------------------------------------------------------------


def _bump(s: Session, conv: Conversation, expected_version: int | None, **values: Any) -> None:
    """Apply a change atomically; with `expected_version`, refuse it when someone changed it first."""
    q = update(Conversation).where(Conversation.tenant_id == conv.tenant_id, Conversation.id == conv.id)
    if expected_version is not None:
        q = q.where(Conversation.version == expected_version)
    res = s.execute(
        q.values(version=Conversation.version + 1, **values).execution_options(synchronize_session=False)
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        raise Conflict(detail="someone else changed this conversation; reload and try again")
    s.refresh(conv)


def reply(
    ctx: Konsent, s: Session, who: StaffMember, conversation_id: int, text: str, at: datetime | None = None
) -> Message:
    """An agent answers; the bot stops and the first response time is kept (M1, M2)."""
    staff.require(who.role, "messages.send")
    at = at or utcnow()
    text = text.strip()
    if not text:
        raise InvalidInput(detail="the reply is empty")
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    assert contact is not None
    msg = enqueue_message(
        ctx,
        s,
        contact,
        "service",
        OutboundContent(text=text),
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
    _bump(s, conv, None, last_message_at=at)
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
    """Outside the customer-service window: an approved template with its variables (M1, CH3)."""
    staff.require(who.role, "messages.send")
    at = at or utcnow()
    template, language = template.strip(), language.strip()
    if not re.fullmatch(r"[a-z0-9_]{1,512}", template):
        raise InvalidInput(detail="a template name has lower-case letters, digits and underscores")
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", language):
        raise InvalidInput(detail="a template language looks like de or en_US")
    if len(params) > 20 or any(len(p) > 1000 for p in params):
        raise InvalidInput(detail="at most 20 template variables of up to 1000 characters")
    conv = get_conversation(s, who, conversation_id)
    acc = s.get(ChannelAccount, conv.channel_account_id)
    contact = s.get(Contact, conv.contact_id)
    assert acc is not None and contact is not None
    if not ctx.adapter(acc.kind).capabilities.templates:
        raise InvalidInput(detail="this channel has no message templates")
    msg = enqueue_message(
        ctx,
        s,
        contact,
        "service",
        OutboundContent(template=template, template_language=language, template_params=tuple(params)),
        channel_account_id=conv.channel_account_id,
        conversation_id=conv.id,
        author=who.actor,
        at=at,
    )
    _bump(s, conv, None, last_message_at=at)
    audit.record(
        s, who.tenant_id, who.actor, "conversation.template", f"contact:{contact.id}", message=msg.id
    )
    return msg


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
    _bump(s, conv, expected_version, assignee_id=assignee_id, team_id=team_id)
    live.record(s, who.tenant_id, conv.id, "assigned")
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
) -> Conversation:
    """open / pending / closed (M1)."""
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
    _bump(s, conv, expected_version, state=state, closed_at=at if state == "closed" else None)
    live.record(s, who.tenant_id, conv.id, "state")
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
    _bump(s, conv, None, snoozed_until=until)
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
    _bump(s, conv, None)
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
    _bump(s, conv, None)
    live.record(s, who.tenant_id, conv.id, "labels")
    return clean


def on_contact_message(s: Session, conv: Conversation) -> None:
    """A message from the contact wakes a snoozed or pending conversation (M1)."""
    values: dict[str, Any] = {}
    if conv.snoozed_until is not None:
        values["snoozed_until"] = None
    if conv.state == "pending":
        values["state"] = "open"
    _bump(s, conv, None, **values)
    live.maybe_prune(s, conv.tenant_id)


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
    """Replace {name}, {agent}, {company}; unknown variables stay visible for the agent to fix."""
    return _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), body)


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


def unread_counts(s: Session, who: StaffMember) -> dict[str, int]:
    """Open conversations per state the caller can see (for the navigation badge)."""
    q = select(Conversation.state, func.count()).where(Conversation.tenant_id == who.tenant_id)
    cond = _visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    return {state: n for state, n in s.execute(q.group_by(Conversation.state)).tuples()}
