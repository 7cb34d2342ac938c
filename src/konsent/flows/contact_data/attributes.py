"""Typed custom attributes: definitions with purpose and retention, and each contact's values (M5, S1, L1).

A value is checked against its attribute's type (domain.attributes.parse_value), stored sealed
with the contact's own key (so erasure shreds every copy), and found by a keyed blind index
of its folded canonical form (flows.contact_data.index.value_token).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.attributes import AttributeSpec, AttributeType, Retention, check_definition, parse_value
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.contact_data.index import search_key, value_token
from konsent.flows.context import Konsent
from konsent.store.tables import AttributeDefinition, Contact, ContactAttribute
from konsent.store.types import utcnow

MAX_ATTRIBUTES = 100
MAX_NAME = 200


def aad(contact_id: int, attribute_id: int) -> bytes:
    return f"contact:{contact_id}:attribute:{attribute_id}".encode()


def spec_of(d: AttributeDefinition) -> AttributeSpec:
    return AttributeSpec(
        d.key, AttributeType(d.type), tuple(d.options or ()), Retention(d.retention), d.retention_days
    )


def list_attributes(s: Session, tenant_id: int) -> list[AttributeDefinition]:
    return list(
        s.scalars(
            select(AttributeDefinition)
            .where(AttributeDefinition.tenant_id == tenant_id)
            .order_by(AttributeDefinition.name, AttributeDefinition.id)
        ).all()
    )


def get_attribute(s: Session, tenant_id: int, attribute_id: int) -> AttributeDefinition:
    if not 0 < attribute_id < 2**63:
        raise NotFound()
    row = s.get(AttributeDefinition, attribute_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound()
    return row


def attribute_by_key(s: Session, tenant_id: int, key: str) -> AttributeDefinition | None:
    return s.scalars(
        select(AttributeDefinition).where(
            AttributeDefinition.tenant_id == tenant_id, AttributeDefinition.key == key
        )
    ).one_or_none()


def _name(name: str, key: str) -> str:
    name = " ".join(name.split()) or key
    if len(name) > MAX_NAME:
        raise InvalidInput("A name has at most {limit} characters.", limit=MAX_NAME)
    return name


def define_attribute(
    s: Session,
    tenant_id: int,
    actor: str,
    *,
    key: str,
    name: str,
    type: str,
    options: Sequence[str] = (),
    purpose: str,
    retention: str,
    retention_days: int | None = None,
) -> AttributeDefinition:
    """A new attribute with its purpose and retention rule (audited, L1)."""
    spec = check_definition(key.strip(), type, options, purpose, retention, retention_days)
    if attribute_by_key(s, tenant_id, spec.key) is not None:
        raise Conflict("An attribute with this key exists already.")
    if len(list_attributes(s, tenant_id)) >= MAX_ATTRIBUTES:
        raise InvalidInput("At most {count} attributes.", count=MAX_ATTRIBUTES)
    row = AttributeDefinition(
        tenant_id=tenant_id,
        key=spec.key,
        name=_name(name, spec.key),
        type=spec.type.value,
        options=list(spec.options),
        purpose=purpose.strip(),
        retention=spec.retention.value,
        retention_days=spec.retention_days,
        created_by=actor,
    )
    s.add(row)
    s.flush()
    audit.record(
        s, tenant_id, actor, "attribute.define", f"attribute:{row.id}",
        key=row.key, type=row.type, retention=row.retention, retention_days=row.retention_days,
    )  # fmt: skip
    return row


def update_attribute(
    s: Session,
    tenant_id: int,
    actor: str,
    attribute_id: int,
    *,
    name: str | None = None,
    options: Sequence[str] | None = None,
    purpose: str | None = None,
    retention: str | None = None,
    retention_days: int | None = None,
) -> AttributeDefinition:
    """Change name, options, purpose or retention; key and type stay (stored values keep their meaning)."""
    row = get_attribute(s, tenant_id, attribute_id)
    new_retention = retention if retention is not None else row.retention
    days = retention_days if retention is not None else row.retention_days
    spec = check_definition(
        row.key,
        row.type,
        options if options is not None else row.options,
        purpose if purpose is not None else row.purpose,
        new_retention,
        days,
    )
    changed = []
    if name is not None and _name(name, row.key) != row.name:
        row.name = _name(name, row.key)
        changed.append("name")
    if list(spec.options) != list(row.options or []):
        row.options = list(spec.options)
        changed.append("options")
    if purpose is not None and purpose.strip() != row.purpose:
        row.purpose = purpose.strip()
        changed.append("purpose")
    if (spec.retention.value, spec.retention_days) != (row.retention, row.retention_days):
        row.retention, row.retention_days = spec.retention.value, spec.retention_days
        changed.append("retention")
    if changed:
        audit.record(
            s, tenant_id, actor, "attribute.update", f"attribute:{row.id}",
            fields=changed, retention=row.retention, retention_days=row.retention_days,
        )  # fmt: skip
    return row


def delete_attribute(s: Session, tenant_id: int, actor: str, attribute_id: int) -> int:
    """Delete an attribute and every contact's value of it; returns how many values went."""
    row = get_attribute(s, tenant_id, attribute_id)
    res = s.execute(
        delete(ContactAttribute).where(
            ContactAttribute.tenant_id == tenant_id, ContactAttribute.attribute_id == row.id
        ),
        execution_options={"synchronize_session": False},
    )
    n = int(res.rowcount or 0)  # type: ignore[attr-defined]
    s.delete(row)
    audit.record(s, tenant_id, actor, "attribute.delete", f"attribute:{attribute_id}", key=row.key, values=n)
    return n


def values_of(ctx: Konsent, s: Session, contact: Contact) -> dict[str, str]:
    """The contact's attribute values by key, opened (empty once its key is shredded)."""
    return values_of_many(ctx, s, contact.tenant_id, [contact]).get(contact.id, {})


def values_of_many(
    ctx: Konsent, s: Session, tenant_id: int, contacts: Sequence[Contact]
) -> dict[int, dict[str, str]]:
    """Attribute values of many contacts (a page, an export): one query, keys loaded at once."""
    by_id = {c.id: c for c in contacts}
    out: dict[int, dict[str, str]] = {cid: {} for cid in by_id}
    if not by_id:
        return out
    keys = {d.id: d.key for d in list_attributes(s, tenant_id)}
    ctx.keys.preload(s, contacts)
    for ids in _chunks(sorted(by_id), 500):
        for cid, aid, blob in s.execute(
            select(
                ContactAttribute.contact_id, ContactAttribute.attribute_id, ContactAttribute.value_sealed
            ).where(ContactAttribute.tenant_id == tenant_id, ContactAttribute.contact_id.in_(ids))
        ):
            try:
                ckey = ctx.keys.contact_key(s, by_id[cid])
                out[cid][keys[aid]] = crypto.open_text(ckey, blob, aad(cid, aid))
            except (crypto.DecryptionError, KeyError):
                continue
    return out


def _chunks(ids: list[int], n: int) -> Iterable[list[int]]:
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


def check_values(
    s: Session, tenant_id: int, values: Mapping[str, str | None]
) -> dict[AttributeDefinition, str | None]:
    """Every value checked against its attribute before anything is written; 4xx on the first bad one."""
    defs = {d.key: d for d in list_attributes(s, tenant_id)}
    out: dict[AttributeDefinition, str | None] = {}
    for key, raw in values.items():
        d = defs.get(key)
        if d is None:
            raise InvalidInput("Unknown attribute {key}.", key=str(key)[:63])
        if raw is None or not str(raw).strip():
            out[d] = None
            continue
        if not isinstance(raw, str):
            raise InvalidInput("{key}: not a text.", key=d.key)
        out[d] = parse_value(spec_of(d), raw)
    return out


def write_values(
    ctx: Konsent,
    s: Session,
    contact: Contact,
    checked: Mapping[AttributeDefinition, str | None],
    at: datetime | None = None,
) -> list[str]:
    """Store checked values (None deletes); returns the keys that changed. The caller audits."""
    at = at or utcnow()
    tid = contact.tenant_id
    existing = {
        r.attribute_id: r
        for r in s.scalars(
            select(ContactAttribute).where(
                ContactAttribute.tenant_id == tid, ContactAttribute.contact_id == contact.id
            )
        ).all()
    }
    ckey = ctx.keys.contact_key(s, contact)
    skey = search_key(ctx, s, tid)
    changed: list[str] = []
    for d, value in checked.items():
        row = existing.get(d.id)
        if value is None:
            if row is not None:
                s.delete(row)
                changed.append(d.key)
            continue
        token = value_token(skey, value)
        if row is not None and crypto.open_text(ckey, row.value_sealed, aad(contact.id, d.id)) == value:
            continue
        sealed = crypto.seal_text(ckey, value, aad(contact.id, d.id))
        if row is None:
            s.add(
                ContactAttribute(
                    tenant_id=tid,
                    contact_id=contact.id,
                    attribute_id=d.id,
                    value_sealed=sealed,
                    value_index=token,
                    updated_at=at,
                )
            )
        else:
            row.value_sealed, row.value_index, row.updated_at = sealed, token, at
        changed.append(d.key)
    s.flush()
    return sorted(changed)
