"""Audiences: a topic's consented contacts, narrowed by a segment definition (M5, M3, C5).

The audience query is always "active consent for the broadcast's topic" (with the minimum
consent-text version, not erased, reachable, no objection to marketing). A segment definition
(domain.segments) adds conditions to that query and nothing else: every criterion is an extra
`WHERE`, so a segment can only narrow the audience, never widen it. Definitions are evaluated
when the broadcast is queued (at send time), and a broadcast keeps a copy of the definition it
was sent with (its proof, flows.outbound.broadcast_proof).

Saved segments are named definitions per tenant; using one copies it into the broadcast.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, false, func, select
from sqlalchemy.orm import Session

from konsent.domain import segments as rules
from konsent.domain.attributes import parse_value
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.domain.purposes import ConsentStatus, Purpose
from konsent.flows import audit
from konsent.flows.contact_data import attributes, labels, query
from konsent.flows.context import Konsent
from konsent.flows.organisation import localtime, names
from konsent.flows.organisation.tenants import topics as tenant_topics
from konsent.store.tables import (
    Broadcast,
    Consent,
    Contact,
    ContactField,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    Message,
    OutboxRow,
    Segment,
)
from konsent.store.types import utcnow

SAMPLE_SIZE = 5

CONTACT_COLUMNS = (
    Contact.id,
    Contact.tenant_id,
    Contact.wrapped_key,
    Contact.key_version,
    Contact.name_sealed,
    Contact.locale,
    Contact.has_contacted_us,
    Contact.erased_at,
    Contact.unreachable,
    Contact.objected_marketing,
)


@dataclass(frozen=True)
class Audience:
    """Who a broadcast is for: the consent part (never optional) and the segment part."""

    tenant_id: int
    purpose: str
    min_text_version: int = 0
    definition: dict[str, Any] = field(default_factory=dict)
    channel_account_id: int | None = None
    broadcast_id: int | None = None  # the broadcast being sent: not "the last broadcast" itself

    @classmethod
    def of(cls, b: Broadcast) -> Audience:
        return cls(b.tenant_id, b.purpose, b.min_text_version, b.segment or {}, b.channel_account_id, b.id)


# ---------------------------------------------------------------- the query


def audience_query(s: Session, a: Audience, now: datetime, ctx: Konsent | None = None) -> Any:
    """Contacts with active consent for the topic, narrowed by the segment, in any order (C5, C6, M5)."""
    q = (
        select(*CONTACT_COLUMNS, Consent.channel_account_id.label("consent_account"))
        .join(Consent, and_(Consent.contact_id == Contact.id, Consent.tenant_id == Contact.tenant_id))
        .where(
            Consent.tenant_id == a.tenant_id,
            Consent.purpose == a.purpose,
            Consent.status == ConsentStatus.ACTIVE.value,
            Consent.text_version >= a.min_text_version,
            Contact.erased_at.is_(None),
            Contact.wrapped_key.is_not(None),
            Contact.unreachable.is_(False),
            Contact.objected_marketing.is_(False),
        )
    )
    if a.channel_account_id is not None:
        q = q.where(
            select(ContactIdentity.id)
            .where(
                ContactIdentity.contact_id == Contact.id,
                ContactIdentity.channel_account_id == a.channel_account_id,
            )
            .exists()
        )
    # Only ever `.where(...)`: a criterion can take contacts away, never add any.
    for condition in _conditions(ctx, s, a, rules.criteria(a.definition), now):
        q = q.where(condition)
    return q


def _day_start(s: Session, tenant_id: int, value: str) -> datetime:
    """Midnight of a date in the tenant's time zone: what "subscribed since 1 March" means there."""
    zone = zoneinfo.ZoneInfo(localtime.tenant_zone_of(s, tenant_id))
    return datetime.combine(date.fromisoformat(value), time(0), zone)


def _wrote_since(tenant_id: int, since: datetime) -> Any:
    return (
        select(ContactIdentity.id)
        .where(
            ContactIdentity.tenant_id == tenant_id,
            ContactIdentity.contact_id == Contact.id,
            ContactIdentity.last_inbound_at >= since,
        )
        .exists()
    )


def last_broadcast_id(s: Session, a: Audience) -> int | None:
    """The tenant's most recent broadcast on the same topic that went out (not this one)."""
    q = select(Broadcast.id).where(
        Broadcast.tenant_id == a.tenant_id,
        Broadcast.purpose == a.purpose,
        Broadcast.started_at.is_not(None),
        Broadcast.state.in_(("sending", "done", "paused", "cancelled")),
    )
    if a.broadcast_id is not None:
        q = q.where(Broadcast.id != a.broadcast_id)
    return s.scalar(q.order_by(Broadcast.started_at.desc(), Broadcast.id.desc()).limit(1))


def _conditions(ctx: Konsent | None, s: Session, a: Audience, c: dict[str, Any], now: datetime) -> list[Any]:
    tid = a.tenant_id
    out: list[Any] = []
    for topic in c.get("topics", []):
        other = Consent.__table__.alias("also")
        out.append(
            select(other.c.id)
            .where(
                other.c.tenant_id == tid,
                other.c.contact_id == Contact.id,
                other.c.purpose == str(Purpose.newsletter(topic)),
                other.c.status == ConsentStatus.ACTIVE.value,
            )
            .exists()
        )
    if "replied_within_days" in c:
        out.append(_wrote_since(tid, now - timedelta(days=c["replied_within_days"])))
    if "not_replied_for_days" in c:
        out.append(~_wrote_since(tid, now - timedelta(days=c["not_replied_for_days"])))
    if "read_last_broadcast" in c:
        last = last_broadcast_id(s, a)
        readers = (
            select(OutboxRow.contact_id)
            .join(Message, Message.id == OutboxRow.message_id)
            .where(OutboxRow.broadcast_id == last, Message.tenant_id == tid, Message.status == "read")
        )
        out.append(Contact.id.in_(readers) if c["read_last_broadcast"] else Contact.id.not_in(readers))
    if "subscribed_since" in c:
        out.append(Consent.changed_at >= _day_start(s, tid, c["subscribed_since"]))
    if "subscribed_before" in c:
        out.append(Consent.changed_at < _day_start(s, tid, c["subscribed_before"]))
    if "locale" in c:
        out.append(Contact.locale == c["locale"])
    if "active_within_days" in c:
        out.append(Contact.last_activity_at >= now - timedelta(days=c["active_within_days"]))
    if "inactive_for_days" in c:
        out.append(Contact.last_activity_at < now - timedelta(days=c["inactive_for_days"]))
    if "has_contacted_us" in c:
        out.append(Contact.has_contacted_us.is_(c["has_contacted_us"]))
    if "label" in c:
        out.append(
            select(ConversationLabel.id)
            .join(Conversation, Conversation.id == ConversationLabel.conversation_id)
            .where(
                ConversationLabel.tenant_id == tid,
                ConversationLabel.label == c["label"],
                Conversation.contact_id == Contact.id,
            )
            .exists()
        )
    if "has_field" in c:
        out.append(
            select(ContactField.id)
            .where(
                ContactField.tenant_id == tid,
                ContactField.contact_id == Contact.id,
                ContactField.name == c["has_field"],
            )
            .exists()
        )
    if "contact_labels" in c:
        out.append(_labelled(s, tid, c["contact_labels"]))
    for condition in c.get("attributes", []):
        out.append(_attribute_condition(ctx, s, a, condition))
    return out


def _labelled(s: Session, tenant_id: int, wanted: list[str]) -> Any:
    """Carries every one of these labels; a label deleted since the definition was saved matches
    nobody (dropping it from the condition would widen the segment)."""
    known = {d.name.casefold(): d.id for d in labels.list_labels(s, tenant_id)}
    ids = [known.get(name.casefold()) for name in wanted]
    if None in ids:
        return false()
    return Contact.id.in_(query.with_all_labels(s, tenant_id, [i for i in ids if i is not None]))


def _attribute_condition(ctx: Konsent | None, s: Session, a: Audience, condition: dict[str, Any]) -> Any:
    """One typed attribute condition: exact matches by blind index in SQL; comparisons open the
    values of the topic's consented contacts in batches (flows.contact_data.query)."""
    d = attributes.attribute_by_key(s, a.tenant_id, condition["name"])
    if d is None:
        return false()  # deleted since the definition was saved: nobody, never everybody
    op = condition["op"]
    if op in ("set", "unset"):
        having = query.with_attribute(s, a.tenant_id, d.id)
        return Contact.id.in_(having) if op == "set" else Contact.id.not_in(having)
    if ctx is None:
        # Values are sealed: comparing them needs the key ring. Only read models without it (a
        # cost estimate) get here, and for them "holds the attribute" is an upper bound; queuing
        # and every preview pass the key ring.
        return Contact.id.in_(query.with_attribute(s, a.tenant_id, d.id))
    if op == "eq":
        return Contact.id.in_(query.with_attribute_value(ctx, s, a.tenant_id, d.id, str(condition["value"])))
    consented = select(Consent.contact_id).where(
        Consent.tenant_id == a.tenant_id,
        Consent.purpose == a.purpose,
        Consent.status == ConsentStatus.ACTIVE.value,
    )
    ids = query.compare_attribute(ctx, s, a.tenant_id, d.id, op, str(condition["value"]), among=consented)
    return Contact.id.in_(ids) if ids else false()


# ---------------------------------------------------------------- definitions


def check(s: Session, tenant_id: int, definition: Any) -> dict[str, Any]:
    """A valid definition for this tenant (its topics exist), or InvalidInput (M5)."""
    clean = rules.validate(definition)
    known = {t.slug for t in tenant_topics(s, tenant_id)}
    for topic in clean.get("topics", []):
        if topic not in known:
            raise InvalidInput("unknown topic {topic}", topic=repr(topic))
    if "contact_labels" in clean:
        labels.resolve(s, tenant_id, clean["contact_labels"])  # 4xx for a label the tenant lacks
    for condition in clean.get("attributes", []):
        d = attributes.attribute_by_key(s, tenant_id, condition["name"])
        if d is None:
            raise InvalidInput("unknown attribute {name}", name=repr(condition["name"]))
        if "value" in condition:
            parse_value(attributes.spec_of(d), str(condition["value"]))  # 4xx for a wrong type
    return clean


def for_broadcast(
    s: Session, tenant_id: int, definition: dict[str, Any] | None, segment_id: int | None
) -> dict[str, Any]:
    """The definition a broadcast keeps: a copy of the saved segment (with its id and name), or
    the given criteria; never a reference, so later edits of the segment do not change it."""
    if segment_id is None:
        return check(s, tenant_id, definition)
    if definition:
        raise InvalidInput(detail="choose a saved segment or criteria, not both")
    seg = get_segment(s, tenant_id, segment_id)
    return {
        **check(s, tenant_id, rules.criteria(seg.definition)),
        "segment": {"id": seg.id, "name": seg.name},
    }


def _name(name: str) -> str:
    name = " ".join((name or "").split())
    if not 0 < len(name) <= 200:
        raise InvalidInput(detail="a segment needs a name of at most 200 characters")
    return name


def _unique(s: Session, tenant_id: int, name: str, other_than: int | None = None) -> None:
    q = select(Segment.id).where(Segment.tenant_id == tenant_id, Segment.name == name)
    if other_than is not None:
        q = q.where(Segment.id != other_than)
    if s.scalar(q) is not None:
        raise Conflict("a segment named {name} exists already", name=repr(name))


def create_segment(s: Session, tenant_id: int, actor: str, name: str, definition: Any) -> Segment:
    """Save a named segment definition; audited (M5)."""
    name = _name(name)
    clean = rules.criteria(check(s, tenant_id, definition))
    _unique(s, tenant_id, name)
    now = utcnow()
    seg = Segment(
        tenant_id=tenant_id, name=name, definition=clean, author=actor, created_at=now, updated_at=now
    )
    s.add(seg)
    s.flush()
    audit.record(s, tenant_id, actor, "segment.create", f"segment:{seg.id}", definition=clean)
    return seg


def update_segment(
    s: Session, tenant_id: int, actor: str, segment_id: int, name: str, definition: Any
) -> Segment:
    """Change a saved segment; broadcasts that used it keep the copy they were sent with."""
    seg = get_segment(s, tenant_id, segment_id)
    name = _name(name)
    clean = rules.criteria(check(s, tenant_id, definition))
    _unique(s, tenant_id, name, seg.id)
    seg.name, seg.definition, seg.updated_at = name, clean, utcnow()
    audit.record(s, tenant_id, actor, "segment.update", f"segment:{seg.id}", definition=clean)
    return seg


def delete_segment(s: Session, tenant_id: int, actor: str, segment_id: int) -> None:
    seg = get_segment(s, tenant_id, segment_id)
    s.delete(seg)
    audit.record(s, tenant_id, actor, "segment.delete", f"segment:{segment_id}")


def get_segment(s: Session, tenant_id: int, segment_id: int) -> Segment:
    """A saved segment of this tenant, or NotFound (invariant 4)."""
    seg = s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id))
    if seg is None:
        raise NotFound()
    return seg


def list_segments(s: Session, tenant_id: int) -> list[Segment]:
    return list(s.scalars(select(Segment).where(Segment.tenant_id == tenant_id).order_by(Segment.name)))


def describe(seg: Segment) -> dict[str, Any]:
    """A saved segment as the API shows it (no personal data)."""
    return {
        "id": seg.id,
        "name": seg.name,
        "definition": seg.definition,
        "author": seg.author,
        "created_at": seg.created_at.isoformat(),
        "updated_at": seg.updated_at.isoformat(),
    }


# ---------------------------------------------------------------- preview


@dataclass(frozen=True)
class Preview:
    """How many contacts a broadcast would reach now, and a few of their names for who may see them."""

    count: int
    sample: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sample": self.sample}


def preview(
    ctx: Konsent,
    s: Session,
    a: Audience,
    *,
    actor: str = "",
    show_names: bool = False,
    now: datetime | None = None,
) -> Preview:
    """The audience size now (the count the same query queues), plus up to five display names for
    staff allowed to see personal data; showing names is an access, so it is audited (S4)."""
    q = audience_query(s, a, now or utcnow(), ctx)
    count = int(s.scalar(q.with_only_columns(func.count(Contact.id)).order_by(None)) or 0)
    sample: list[str] = []
    if show_names and count:
        rows = s.execute(q.order_by(Contact.id).limit(SAMPLE_SIZE * 2)).all()
        found = names.display_names(ctx, s, rows)  # type: ignore[arg-type]
        sample = [n for n in (found.get(r.id, "") for r in rows) if n][:SAMPLE_SIZE]
        if sample:
            audit.record(
                s,
                a.tenant_id,
                actor or "system",
                "segment.preview",
                f"purpose:{a.purpose}",
                names=len(sample),
            )
    return Preview(count, sample)


def preview_for(
    ctx: Konsent,
    tenant_id: int,
    topic: str,
    definition: Any = None,
    *,
    segment_id: int | None = None,
    min_text_version: int = 0,
    channel_account_id: int | None = None,
    actor: str = "",
    show_names: bool = False,
) -> Preview:
    """Preview before a broadcast exists: a topic and criteria or a saved segment (M5)."""
    with ctx.db.write() as s:  # a write: showing names appends to the audit log
        if topic not in {t.slug for t in tenant_topics(s, tenant_id)}:
            raise InvalidInput("unknown topic {topic}", topic=repr(topic))
        if min_text_version < 0:
            raise InvalidInput(detail="the minimum consent-text version cannot be negative")
        definition = for_broadcast(s, tenant_id, definition, segment_id)
        a = Audience(
            tenant_id, str(Purpose.newsletter(topic)), min_text_version, definition, channel_account_id
        )
        return preview(ctx, s, a, actor=actor, show_names=show_names)
