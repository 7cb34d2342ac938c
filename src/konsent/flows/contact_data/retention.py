"""Attribute values whose retention rule has run out are deleted by the retention run (L1).

Each attribute carries its own rule (domain.attributes.Retention): kept until erasure, N days
after the value was set, or N days after the contact's last activity. Called by
`flows.privacy.retention.run_retention`, which records the count as `contact_attributes`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from konsent.domain.attributes import Retention
from konsent.flows.contact_data.attributes import list_attributes
from konsent.flows.context import Konsent
from konsent.store.tables import AttributeDefinition, Contact, ContactAttribute

CATEGORY = "contact_attributes"


def _due(d: AttributeDefinition, now: datetime) -> Any | None:
    """A select of the ids of this attribute's values that fall due at `now`; None: never."""
    if d.retention == Retention.UNTIL_ERASURE or d.retention_days is None:
        return None
    cutoff = now - timedelta(days=d.retention_days)
    q = select(ContactAttribute.id).where(
        ContactAttribute.tenant_id == d.tenant_id,
        ContactAttribute.attribute_id == d.id,
        ContactAttribute.updated_at < cutoff,
    )
    if d.retention == Retention.AFTER_LAST_CONTACT:
        last_contact = select(Contact.id).where(
            and_(
                Contact.tenant_id == d.tenant_id,
                func.coalesce(Contact.last_activity_at, Contact.created_at) < cutoff,
            )
        )
        q = q.where(ContactAttribute.contact_id.in_(last_contact))
    return q


def due_count(s: Session, tenant_id: int, now: datetime) -> int:
    """How many values a run would delete now (the dry run)."""
    total = 0
    for d in list_attributes(s, tenant_id):
        q = _due(d, now)
        if q is not None:
            total += int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
    return total


def expire_values(ctx: Konsent, tenant_id: int, now: datetime, batch: int = 5000) -> int:
    """Delete due values, attribute by attribute, each batch its own short transaction."""
    with ctx.db.read() as s:
        defs = [d.id for d in list_attributes(s, tenant_id) if d.retention != Retention.UNTIL_ERASURE]
    total = 0
    for attribute_id in defs:
        while True:
            with ctx.db.write() as s:
                d = s.get(AttributeDefinition, attribute_id)
                q = _due(d, now) if d is not None else None
                if q is None:
                    break
                ids = list(s.scalars(q.limit(batch)).all())
                if ids:
                    s.execute(
                        delete(ContactAttribute).where(ContactAttribute.id.in_(ids)),
                        execution_options={"synchronize_session": False},
                    )
            total += len(ids)
            if len(ids) < batch:
                break
    return total
