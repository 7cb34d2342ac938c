"""Newsletter topics a tenant offers: create, rename, describe, order, archive (U5, C1, C5).

A topic's slug is what consents, proofs and messages refer to (`newsletter:<slug>`), so it
never changes: renaming changes only the names shown. Archiving hides a topic from the
widget and from new broadcasts; its consents, ledger entries and history stay. A topic
that anything refers to is never deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.domain.purposes import NEWSLETTER_PREFIX
from konsent.flows import audit
from konsent.flows.organisation import tenants
from konsent.i18n import LOCALES
from konsent.store.tables import Broadcast, Consent, LedgerEntry, OptInRequest, Tenant, Topic
from konsent.store.types import utcnow

MAX_NAME = 100
MAX_DESCRIPTION = 500

# Msgids of the refusals (translated where shown).
DUPLICATE = "a topic with this slug exists already (perhaps archived)"
BAD_SLUG = "topic slug: 1-63 lower-case letters, digits, _ or -, starting with a letter or digit"
NEEDS_NAME = "a topic needs a name in German or English"
NAME_TOO_LONG = "a topic name has at most 100 characters"
DESCRIPTION_TOO_LONG = "a topic description has at most 500 characters"
IN_USE = "consents or messages refer to this topic: archive it instead"
UNKNOWN_LOCALE = "unknown language: use de or en"


def _clean(values: dict[str, str] | None, limit: int, too_long: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for locale, value in (values or {}).items():
        if locale not in LOCALES:
            raise InvalidInput(detail=UNKNOWN_LOCALE)
        value = (value or "").strip()
        if len(value) > limit:
            raise InvalidInput(detail=too_long)
        if value:
            out[locale] = value
    return out


def get_topic(s: Session, tenant_id: int, slug: str) -> Topic:
    row = s.scalars(select(Topic).where(Topic.tenant_id == tenant_id, Topic.slug == slug)).one_or_none()
    if row is None:
        raise NotFound()
    return row


def all_topics(s: Session, tenant_id: int) -> list[Topic]:
    """Active topics in their order, then archived ones."""
    return list(
        s.scalars(
            select(Topic)
            .where(Topic.tenant_id == tenant_id)
            .order_by(Topic.active.desc(), Topic.position, Topic.id)
        ).all()
    )


def create_topic(
    s: Session,
    tenant: Tenant,
    slug: str,
    names: dict[str, str],
    descriptions: dict[str, str] | None = None,
    *,
    actor: str = "system",
) -> Topic:
    """A new topic at the end of the list; a taken slug (archived ones too) is refused."""
    slug = (slug or "").strip()
    if not tenants.TOPIC_SLUG.match(slug):
        raise InvalidInput(detail=BAD_SLUG)
    clean_names = _clean(names, MAX_NAME, NAME_TOO_LONG)
    if not clean_names:
        raise InvalidInput(detail=NEEDS_NAME)
    clean_desc = _clean(descriptions, MAX_DESCRIPTION, DESCRIPTION_TOO_LONG)
    if s.scalars(select(Topic.id).where(Topic.tenant_id == tenant.id, Topic.slug == slug)).first():
        raise Conflict(detail=DUPLICATE)
    last = s.scalar(select(func.max(Topic.position)).where(Topic.tenant_id == tenant.id))
    topic = tenants.add_topic(s, tenant, slug, clean_names, clean_desc)
    topic.position = (last or 0) + 1
    audit.record(s, tenant.id, actor, "topic.create", f"topic:{slug}")
    return topic


def update_topic(
    s: Session,
    tenant_id: int,
    slug: str,
    *,
    names: dict[str, str] | None = None,
    descriptions: dict[str, str] | None = None,
    actor: str = "system",
) -> Topic:
    """Rename or describe a topic (per language; an empty value removes it). The slug stays."""
    topic = get_topic(s, tenant_id, slug)
    if names is not None:
        merged = {**topic.names, **{k: v for k, v in names.items()}}
        clean = _clean(merged, MAX_NAME, NAME_TOO_LONG)
        if not clean:
            raise InvalidInput(detail=NEEDS_NAME)
        topic.names = clean
    if descriptions is not None:
        merged = {**topic.descriptions, **{k: v for k, v in descriptions.items()}}
        topic.descriptions = _clean(merged, MAX_DESCRIPTION, DESCRIPTION_TOO_LONG)
    audit.record(s, tenant_id, actor, "topic.update", f"topic:{slug}")
    return topic


def archive_topic(
    s: Session, tenant_id: int, slug: str, *, actor: str = "system", at: datetime | None = None
) -> Topic:
    """Hide a topic from the widget and new broadcasts; every consent and proof stays as it is."""
    topic = get_topic(s, tenant_id, slug)
    if topic.active:
        topic.active = False
        topic.archived_at = at or utcnow()
        audit.record(s, tenant_id, actor, "topic.archive", f"topic:{slug}")
    return topic


def restore_topic(s: Session, tenant_id: int, slug: str, *, actor: str = "system") -> Topic:
    topic = get_topic(s, tenant_id, slug)
    if not topic.active:
        topic.active = True
        topic.archived_at = None
        audit.record(s, tenant_id, actor, "topic.restore", f"topic:{slug}")
    return topic


def move_topic(s: Session, tenant_id: int, slug: str, step: int, *, actor: str = "system") -> list[Topic]:
    """Move an active topic up (step -1) or down (+1) among the active ones; renumbers 1..n."""
    if step not in (-1, 1):
        raise InvalidInput(detail="move a topic up (-1) or down (1)")
    active = [tp for tp in all_topics(s, tenant_id) if tp.active]
    index = next((i for i, tp in enumerate(active) if tp.slug == slug), None)
    if index is None:
        raise NotFound()
    other = index + step
    if 0 <= other < len(active):
        active[index], active[other] = active[other], active[index]
    for pos, tp in enumerate(active, start=1):
        tp.position = pos
    audit.record(s, tenant_id, actor, "topic.move", f"topic:{slug}", step=step)
    return active


def set_order(s: Session, tenant_id: int, slugs: list[str], *, actor: str = "system") -> list[Topic]:
    """Put the active topics into the given order (every active slug exactly once)."""
    active = {tp.slug: tp for tp in all_topics(s, tenant_id) if tp.active}
    if sorted(slugs) != sorted(active):
        raise InvalidInput(detail="name every active topic exactly once")
    for pos, slug in enumerate(slugs, start=1):
        active[slug].position = pos
    audit.record(s, tenant_id, actor, "topic.order", "topics")
    return [active[x] for x in slugs]


def references(s: Session, tenant_id: int, slug: str) -> int:
    """How many consents, ledger entries, broadcasts and opt-in requests name this topic."""
    purpose = NEWSLETTER_PREFIX + slug
    n = 0
    for model in (Consent, LedgerEntry, Broadcast):
        n += (
            s.scalar(
                select(func.count())
                .select_from(model)
                .where(model.tenant_id == tenant_id, model.purpose == purpose)
            )
            or 0
        )
    for req in s.scalars(select(OptInRequest.topics).where(OptInRequest.tenant_id == tenant_id)):
        n += slug in (req or [])
    return n


def delete_topic(s: Session, tenant_id: int, slug: str, *, actor: str = "system") -> None:
    """Delete a topic nobody ever consented to or was written about; otherwise refuse."""
    topic = get_topic(s, tenant_id, slug)
    if references(s, tenant_id, slug):
        raise Conflict(detail=IN_USE)
    s.delete(topic)
    audit.record(s, tenant_id, actor, "topic.delete", f"topic:{slug}")


def active_consents(s: Session, tenant_id: int) -> dict[str, int]:
    """Active consents per topic slug."""
    rows = s.execute(
        select(Consent.purpose, func.count())
        .where(
            Consent.tenant_id == tenant_id, Consent.status == "active", Consent.purpose.like("newsletter:%")
        )
        .group_by(Consent.purpose)
    ).all()
    return {str(p)[len(NEWSLETTER_PREFIX) :]: int(n) for p, n in rows}


def topic_view(topic: Topic, locale: str) -> dict[str, Any]:
    """A topic as the API, CLI and admin show it."""
    return {
        "slug": topic.slug,
        "purpose": NEWSLETTER_PREFIX + topic.slug,
        "name": topic.names.get(locale) or topic.names.get("de") or topic.names.get("en") or topic.slug,
        "names": dict(topic.names),
        "descriptions": dict(topic.descriptions),
        "position": topic.position,
        "active": topic.active,
        "archived_at": topic.archived_at.isoformat() if topic.archived_at else None,
    }
