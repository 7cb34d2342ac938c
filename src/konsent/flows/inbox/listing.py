"""The agent inbox: who sees which conversation, and the conversation list (M1, S3).

Every change bumps the conversation's `version` with an atomic UPDATE (`bump`), so two
agents acting at once are both recorded and a stale form is refused (409), never lost.
Every change also appends an `InboxEvent`; live pages follow those (flows.live).
One conversation's view and changes live in `flows.conversation`, canned replies in
`flows.canned`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.contacts import contact_name
from konsent.flows.context import Konsent
from konsent.flows.inbox import live, people
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.flows.organisation.teams import team_ids_of
from konsent.store.tables import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    StaffUser,
    Team,
    Tenant,
)
from konsent.store.tenant_settings import merge_settings
from konsent.store.types import utcnow

STATES = ("open", "pending", "closed")
PAGE = 50
SEARCH_SCAN = 2000  # names are sealed: a name search decrypts at most this many recent conversations


def user_id(who: StaffMember) -> int | None:
    return who.user.id if who.user is not None else None


def visible_teams(s: Session, who: StaffMember) -> set[int] | None:
    """None: every conversation; else the team ids an agent may see (S3)."""
    staff.require(who.role, "inbox.use")
    if staff.allowed(who.role, "inbox.all_teams"):
        return None
    uid = user_id(who)
    return team_ids_of(s, who.tenant_id, uid) if uid is not None else set()


def _agents_see_unrouted(s: Session, tenant_id: int) -> bool:
    tenant = s.get(Tenant, tenant_id)
    return bool(tenant and tenant.settings.get("agents_see_unrouted", False))


def set_agents_see_unrouted(s: Session, who: StaffMember, on: bool) -> None:
    """Whether agents also see conversations no team has yet (S3); audited."""
    staff.require(who.role, "teams.manage")
    merge_settings(s, who.tenant_id, {"agents_see_unrouted": bool(on)})
    audit.record(
        s, who.tenant_id, who.actor, "settings.agents_see_unrouted", f"tenant:{who.tenant_id}", on=on
    )


def agents_see_unrouted(s: Session, tenant_id: int) -> bool:
    return _agents_see_unrouted(s, tenant_id)


def visibility(s: Session, who: StaffMember) -> Any:
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
    cond = visibility(s, who)
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
    my_teams: bool = False  # only the teams the caller is a member of


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
    unread: int = 0  # the contact's messages since an agent last opened it
    initials: str = ""
    number: str = ""  # where no name is known: the phone number, on channels that have one


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
    cond = visibility(s, who)
    if cond is not None:
        q = q.where(cond)
    if f.state:
        if f.state not in STATES:
            raise InvalidInput(detail="unknown state")
        q = q.where(Conversation.state == f.state)
    if f.team_id is not None:
        q = q.where(Conversation.team_id == f.team_id)
    if f.my_teams:
        uid = user_id(who)
        mine = team_ids_of(s, who.tenant_id, uid) if uid is not None else set()
        q = q.where(Conversation.team_id.in_(mine) if mine else Conversation.id < 0)
    if f.assignee == "me":
        q = q.where(Conversation.assignee_id == (user_id(who) or -1))
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
    contacts = _contacts(ctx, s, convs)
    out = []
    for c in convs:
        contact = contacts.get(c.contact_id)
        if contact is not None and needle in contact_name(ctx, s, contact).casefold():
            out.append(c)
    return out


def _contacts(ctx: Konsent, s: Session, convs: list[Conversation]) -> dict[int, Contact]:
    """The page's contacts, their keys loaded in one key-store query (their names are opened next)."""
    ids = {c.contact_id for c in convs}
    if not ids:
        return {}
    found = {c.id: c for c in s.scalars(select(Contact).where(Contact.id.in_(ids))).all()}
    ctx.keys.preload(s, found.values())
    return found


def _rows(ctx: Konsent, s: Session, tenant_id: int, convs: list[Conversation]) -> list[InboxRow]:
    if not convs:
        return []
    contacts = _contacts(ctx, s, convs)
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
    names = {cid: contact_name(ctx, s, contact) for cid, contact in contacts.items()}
    numbers = people.numbers_for_unnamed(
        ctx, s, tenant_id,
        [
            (contacts[c.contact_id], accounts[c.channel_account_id])
            for c in convs
            if c.contact_id in contacts and c.channel_account_id in accounts and not names.get(c.contact_id)
        ],
    )  # fmt: skip
    unread = people.unread_counts(s, tenant_id, [c.id for c in convs])
    out = []
    for c in convs:
        acc = accounts.get(c.channel_account_id)
        team = teams.get(c.team_id) if c.team_id else None
        user = users.get(c.assignee_id) if c.assignee_id else None
        name = names.get(c.contact_id, "")
        number = "" if name else numbers.get((c.contact_id, c.channel_account_id), "")
        out.append(
            InboxRow(
                id=c.id,
                contact_id=c.contact_id,
                name=name,
                number=number,
                initials=people.initials(name),
                unread=unread.get(c.id, 0),
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


def bump(s: Session, conv: Conversation, expected_version: int | None, **values: Any) -> None:
    """Apply a change atomically; with `expected_version`, refuse it when someone changed it first."""
    q = update(Conversation).where(Conversation.tenant_id == conv.tenant_id, Conversation.id == conv.id)
    if expected_version is not None:
        q = q.where(Conversation.version == expected_version)
    # RETURNING the row refreshes `conv` in the same statement (no second SELECT)
    res = s.execute(
        q.values(version=Conversation.version + 1, **values)
        .returning(Conversation)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if res.first() is None:
        raise Conflict(detail="someone else changed this conversation; reload and try again")


def on_contact_message(s: Session, conv: Conversation) -> None:
    """A message from the contact wakes a snoozed or pending conversation (M1)."""
    values: dict[str, Any] = {}
    if conv.snoozed_until is not None:
        values["snoozed_until"] = None
    if conv.state == "pending":
        values["state"] = "open"
    bump(s, conv, None, **values)
    live.maybe_prune(s, conv.tenant_id)


def label_names(s: Session, tenant_id: int, limit: int = 200) -> list[str]:
    """The labels in use on this tenant's conversations (for filters and broadcast segments)."""
    return sorted(
        s.scalars(
            select(ConversationLabel.label)
            .where(ConversationLabel.tenant_id == tenant_id)
            .distinct()
            .limit(limit)
        ).all()
    )
