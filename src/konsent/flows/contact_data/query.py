"""Contact-id selects over labels and attributes, for use cases that build on them (segments, M5).

Each function returns a SQLAlchemy `Select` of contact ids of ONE tenant, to be combined in SQL
(`Contact.id.in_(q)`, `q.intersect(...)`) so nothing is loaded into memory, e.g.:

    vip = query.with_label(s, tenant_id, label_id)
    berlin = query.with_attribute_value(ctx, s, tenant_id, attribute_id, "Berlin")
    audience = select(Consent.contact_id).where(
        ..., Consent.contact_id.in_(vip), Consent.contact_id.in_(berlin)
    )

Rules a caller can rely on:
- tenant-scoped: an id of another tenant's label or attribute matches nobody (never an error);
- erased contacts never match: erasure deletes their labels and values (flows.privacy.rights);
- attribute values are sealed, so only EXACT matches run in SQL (through the keyed blind index
  of the folded canonical value: "berlin" matches "Berlin", "Köln" matches "koln"). Comparisons
  (number greater than, date before) need the values opened: `compare_attribute` does that in
  batches in Python and returns a list, so use it on an already narrowed candidate set;
- these selects carry no consent: a segment MUST still be intersected with the topic's consent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.attributes import AttributeType, fold, parse_value
from konsent.domain.errors import InvalidInput
from konsent.flows.contact_data import attributes
from konsent.flows.contact_data.index import search_key, value_token
from konsent.flows.context import Konsent
from konsent.store.tables import Contact, ContactAttribute, ContactLabel

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def with_label(s: Session, tenant_id: int, label_id: int) -> Select[Any]:
    """Ids of the tenant's contacts carrying this label."""
    return select(ContactLabel.contact_id).where(
        ContactLabel.tenant_id == tenant_id, ContactLabel.label_id == label_id
    )


def with_all_labels(s: Session, tenant_id: int, label_ids: Iterable[int]) -> Select[Any]:
    """Ids of contacts carrying every one of these labels."""
    ids = sorted(set(label_ids))
    return (
        select(ContactLabel.contact_id)
        .where(ContactLabel.tenant_id == tenant_id, ContactLabel.label_id.in_(ids))
        .group_by(ContactLabel.contact_id)
        .having(func.count(ContactLabel.label_id) == len(ids))
    )


def with_any_label(s: Session, tenant_id: int, label_ids: Iterable[int]) -> Select[Any]:
    """Ids of contacts carrying at least one of these labels."""
    return select(ContactLabel.contact_id).where(
        ContactLabel.tenant_id == tenant_id, ContactLabel.label_id.in_(sorted(set(label_ids)))
    )


def with_attribute(s: Session, tenant_id: int, attribute_id: int) -> Select[Any]:
    """Ids of contacts that have any value of this attribute."""
    return select(ContactAttribute.contact_id).where(
        ContactAttribute.tenant_id == tenant_id, ContactAttribute.attribute_id == attribute_id
    )


def with_attribute_value(
    ctx: Konsent, s: Session, tenant_id: int, attribute_id: int, value: str
) -> Select[Any]:
    """Ids of contacts whose value of this attribute equals `value` (after the attribute's own
    normalisation and folding). 4xx if `value` is not a valid value of the attribute."""
    d = attributes.get_attribute(s, tenant_id, attribute_id)
    canonical = parse_value(attributes.spec_of(d), value)
    return select(ContactAttribute.contact_id).where(
        ContactAttribute.tenant_id == tenant_id,
        ContactAttribute.attribute_id == d.id,
        ContactAttribute.value_index == value_token(search_key(ctx, s, tenant_id), canonical),
    )


def compare_attribute(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    attribute_id: int,
    op: str,
    value: str,
    among: Select[Any] | None = None,
    batch: int = 2000,
) -> list[int]:
    """Ids of contacts whose value compares to `value` by `op` (eq ne lt le gt ge), for numbers and
    dates by their order, for text and choice alphabetically on the folded form. Opens the values
    (batch decryption): narrow `among` first where you can."""
    if op not in OPERATORS:
        raise InvalidInput("Unknown comparison {op}.", op=op[:8])
    d = attributes.get_attribute(s, tenant_id, attribute_id)
    spec = attributes.spec_of(d)
    typed = _typed(spec.type)
    want = typed(parse_value(spec, value))
    test = OPERATORS[op]
    q = (
        select(Contact, ContactAttribute.value_sealed)
        .join(ContactAttribute, ContactAttribute.contact_id == Contact.id)
        .where(ContactAttribute.tenant_id == tenant_id, ContactAttribute.attribute_id == d.id)
    )
    if among is not None:
        q = q.where(Contact.id.in_(among))
    out: list[int] = []
    last = 0
    while True:
        rows = s.execute(q.where(Contact.id > last).order_by(Contact.id).limit(batch)).all()
        if not rows:
            return out
        last = rows[-1][0].id
        ctx.keys.preload(s, [r[0] for r in rows])
        for contact, blob in rows:
            try:
                raw = crypto.open_text(
                    ctx.keys.contact_key(s, contact), blob, attributes.aad(contact.id, d.id)
                )
            except crypto.DecryptionError:
                continue
            if test(typed(raw), want):
                out.append(contact.id)


def _typed(kind: AttributeType) -> Callable[[str], Any]:
    if kind is AttributeType.NUMBER:
        return Decimal
    if kind is AttributeType.DATE:
        return date.fromisoformat
    return fold
