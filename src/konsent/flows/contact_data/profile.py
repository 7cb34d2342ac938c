"""The contact page's one Save: display name, labels and attribute values in one transaction (M5, S4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput
from konsent.flows import audit, contacts
from konsent.flows.contact_data import attributes, labels
from konsent.flows.contact_data.index import index_name
from konsent.flows.context import Konsent

MAX_NAME = 200


@dataclass
class ContactData:
    """What staff keep about a contact beyond the conversation, as the page and the API show it."""

    contact_id: int
    labels: list[dict[str, object]] = field(default_factory=list)  # {"id", "name"}
    attributes: dict[str, str] = field(default_factory=dict)  # key -> canonical value


def read(ctx: Konsent, s: Session, tenant_id: int, contact_id: int) -> ContactData:
    """The contact's labels and attribute values (the caller audits the view of personal data)."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    out = ContactData(contact.id)
    if contact.erased_at is not None or contact.wrapped_key is None:
        return out
    out.labels = [{"id": r.id, "name": r.name} for r in labels.labels_of(s, tenant_id, contact.id)]
    out.attributes = attributes.values_of(ctx, s, contact)
    return out


def read_audited(ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int) -> ContactData:
    """`read`, recorded in the audit log as a view of the contact's personal data (S4)."""
    data = read(ctx, s, tenant_id, contact_id)
    audit.record(s, tenant_id, actor, "contact.view", f"contact:{contact_id}", part="data")
    return data


def save(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    contact_id: int,
    *,
    name: str | None = None,
    label_refs: Iterable[int | str] | None = None,
    values: Mapping[str, str | None] | None = None,
) -> list[str]:
    """Set what is given (None leaves it): the name, exactly these labels, these attribute values
    (an empty value deletes it). Everything is checked before anything is written; one audit entry
    names the changed fields, never their values (S4). Returns the changed fields."""
    contact = contacts.get_contact(s, tenant_id, contact_id)
    if contact.erased_at is not None or contact.wrapped_key is None:
        raise InvalidInput("This contact was erased.")
    label_ids = labels.resolve(s, tenant_id, label_refs) if label_refs is not None else None
    checked = attributes.check_values(s, tenant_id, values) if values is not None else None
    clean_name = " ".join(name.split()) if name is not None else None
    if clean_name is not None and len(clean_name) > MAX_NAME:
        raise InvalidInput("A name has at most 200 characters.")
    changed: list[str] = []
    if clean_name is not None and clean_name != contacts.contact_name(ctx, s, contact):
        contact.name_sealed = (
            contacts.seal_for_contact(ctx, s, contact, "name", clean_name) if clean_name else None
        )
        index_name(ctx, s, contact, clean_name)
        changed.append("name")
    if label_ids is not None:
        added, removed = labels.set_labels(s, tenant_id, contact.id, label_ids)
        if added or removed:
            changed.append("labels")
    if checked:
        changed += [f"attribute:{k}" for k in attributes.write_values(ctx, s, contact, checked)]
    if changed:
        audit.record(s, tenant_id, actor, "contact.edit", f"contact:{contact.id}", fields=changed)
    return changed
