"""Labels on contacts: the tenant's vocabulary and each contact's set (M5).

Label names are the company's words ("VIP", "Messe 2026"), kept in clear; which contact carries
which label is personal data of that contact and goes with its erasure (D2) and export (D1).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from konsent.domain.attributes import check_label
from konsent.domain.errors import Conflict, InvalidInput, NotFound
from konsent.flows import audit
from konsent.store.tables import ContactLabel, LabelDefinition

MAX_LABELS = 500


def list_labels(s: Session, tenant_id: int) -> list[LabelDefinition]:
    return list(
        s.scalars(
            select(LabelDefinition)
            .where(LabelDefinition.tenant_id == tenant_id)
            .order_by(LabelDefinition.name)
        ).all()
    )


def get_label(s: Session, tenant_id: int, label_id: int) -> LabelDefinition:
    if not 0 < label_id < 2**63:
        raise NotFound()
    row = s.get(LabelDefinition, label_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound()
    return row


def label_by_name(s: Session, tenant_id: int, name: str) -> LabelDefinition | None:
    return s.scalars(
        select(LabelDefinition).where(
            LabelDefinition.tenant_id == tenant_id, LabelDefinition.name == " ".join(name.split())
        )
    ).one_or_none()


def _unique(s: Session, tenant_id: int, name: str, own_id: int | None = None) -> None:
    other = label_by_name(s, tenant_id, name)
    if other is not None and other.id != own_id:
        raise Conflict("A label with this name exists already.")


def define_label(s: Session, tenant_id: int, actor: str, name: str) -> LabelDefinition:
    """A new label of the tenant (audited)."""
    name = check_label(name)
    _unique(s, tenant_id, name)
    count = len(list_labels(s, tenant_id))
    if count >= MAX_LABELS:
        raise InvalidInput("At most {count} labels.", count=MAX_LABELS)
    row = LabelDefinition(tenant_id=tenant_id, name=name)
    s.add(row)
    s.flush()
    audit.record(s, tenant_id, actor, "label.define", f"label:{row.id}", name=name)
    return row


def rename_label(s: Session, tenant_id: int, actor: str, label_id: int, name: str) -> LabelDefinition:
    row = get_label(s, tenant_id, label_id)
    name = check_label(name)
    _unique(s, tenant_id, name, row.id)
    old, row.name = row.name, name
    audit.record(s, tenant_id, actor, "label.rename", f"label:{row.id}", old=old, new=name)
    return row


def delete_label(s: Session, tenant_id: int, actor: str, label_id: int) -> int:
    """Delete a label and take it off every contact; returns how many contacts carried it."""
    row = get_label(s, tenant_id, label_id)
    res = s.execute(
        delete(ContactLabel).where(ContactLabel.tenant_id == tenant_id, ContactLabel.label_id == row.id),
        execution_options={"synchronize_session": False},
    )
    n = int(res.rowcount or 0)  # type: ignore[attr-defined]
    s.delete(row)
    audit.record(s, tenant_id, actor, "label.delete", f"label:{label_id}", name=row.name, contacts=n)
    return n


def labels_of(s: Session, tenant_id: int, contact_id: int) -> list[LabelDefinition]:
    return list(
        s.scalars(
            select(LabelDefinition)
            .join(ContactLabel, ContactLabel.label_id == LabelDefinition.id)
            .where(ContactLabel.tenant_id == tenant_id, ContactLabel.contact_id == contact_id)
            .order_by(LabelDefinition.name)
        ).all()
    )


def labels_of_many(s: Session, tenant_id: int, contact_ids: Iterable[int]) -> dict[int, list[str]]:
    """Label names per contact for a page or an export, in one query."""
    ids = sorted(set(contact_ids))
    out: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    for cid, name in s.execute(
        select(ContactLabel.contact_id, LabelDefinition.name)
        .join(LabelDefinition, LabelDefinition.id == ContactLabel.label_id)
        .where(ContactLabel.tenant_id == tenant_id, ContactLabel.contact_id.in_(ids))
        .order_by(LabelDefinition.name)
    ):
        out[cid].append(name)
    return out


def resolve(s: Session, tenant_id: int, wanted: Iterable[int | str]) -> set[int]:
    """Label ids from ids or names; 4xx for one this tenant does not have."""
    known = {r.id: r for r in list_labels(s, tenant_id)}
    by_name = {r.name.casefold(): r.id for r in known.values()}
    out: set[int] = set()
    for w in wanted:
        if isinstance(w, int) and w in known:
            out.add(w)
        elif isinstance(w, str) and w.strip().isdigit() and int(w.strip()) in known:
            out.add(int(w.strip()))
        elif isinstance(w, str) and " ".join(w.split()).casefold() in by_name:
            out.add(by_name[" ".join(w.split()).casefold()])
        else:
            raise InvalidInput("Unknown label {label}.", label=str(w)[:40])
    return out


def set_labels(s: Session, tenant_id: int, contact_id: int, label_ids: set[int]) -> tuple[set[int], set[int]]:
    """Make the contact carry exactly these labels (ids already resolved); returns (added, removed).

    No audit entry here: the caller's use case writes one for the whole change."""
    have = set(
        s.scalars(
            select(ContactLabel.label_id).where(
                ContactLabel.tenant_id == tenant_id, ContactLabel.contact_id == contact_id
            )
        ).all()
    )
    added, removed = label_ids - have, have - label_ids
    if removed:
        s.execute(
            delete(ContactLabel).where(
                ContactLabel.tenant_id == tenant_id,
                ContactLabel.contact_id == contact_id,
                ContactLabel.label_id.in_(sorted(removed)),
            ),
            execution_options={"synchronize_session": False},
        )
    for lid in sorted(added):
        s.add(ContactLabel(tenant_id=tenant_id, contact_id=contact_id, label_id=lid))
    s.flush()
    return added, removed
