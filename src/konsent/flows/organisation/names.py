"""Names instead of ids: contacts' display names, topic names, staff and token names (U5).

A contact's display name is the provider's profile name (WhatsApp `profile.name`,
Telegram first and last name, Threema nickname) until staff edit it; it is sealed with the
contact's key like every personal field, so erasure shreds it (S1, D2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.errors import InvalidInput
from konsent.flows import audit, contacts
from konsent.flows.contact_data.index import index_name
from konsent.flows.context import Konsent
from konsent.store.tables import ApiToken, Contact, StaffUser, Topic

MAX_NAME = 200


def set_display_name(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, name: str
) -> None:
    """Staff correct or clear a contact's display name; sealed, audited as an edit (S1, S4)."""
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise InvalidInput(detail="A name has at most 200 characters.")
    contact = contacts.get_contact(s, tenant_id, contact_id)
    if contact.wrapped_key is None or contact.erased_at is not None:
        raise InvalidInput(detail="This contact was erased.")
    contact.name_sealed = contacts.seal_for_contact(ctx, s, contact, "name", name) if name else None
    index_name(ctx, s, contact, name)
    audit.record(s, tenant_id, actor, "contact.edit", f"contact:{contact.id}", field="name")


def display_names(ctx: Konsent, s: Session, rows: Sequence[Contact]) -> dict[int, str]:
    """The display names of a page of contacts (empty where none or erased)."""
    out: dict[int, str] = {}
    ctx.keys.preload(s, rows)
    for c in rows:
        try:
            out[c.id] = contacts.contact_name(ctx, s, c)
        except crypto.DecryptionError:
            out[c.id] = ""
    return out


def names_for_list(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    contact_ids: Sequence[int],
    known: Mapping[int, str] | None = None,
) -> dict[int, str]:
    """Display names for a list page of contacts; one audit entry for the page (S4). `known`: names
    the caller already opened in this request (a search confirming its matches), not opened again."""
    if not contact_ids:
        return {}
    known = known or {}
    todo = [cid for cid in contact_ids if cid not in known]
    rows = (
        s.scalars(select(Contact).where(Contact.tenant_id == tenant_id, Contact.id.in_(todo))).all()
        if todo
        else []
    )
    opened = {**display_names(ctx, s, rows), **{cid: known[cid] for cid in contact_ids if cid in known}}
    out = {cid: opened[cid] for cid in contact_ids if opened.get(cid)}
    if out:
        audit.record(s, tenant_id, actor, "contact.list_view", "contacts", names=len(out))
    return out


@dataclass
class Labels:
    """What raw ids in the admin stand for: topics by purpose, staff and tokens by actor."""

    topics: dict[str, dict[str, str]] = field(default_factory=dict)  # "newsletter:x" -> locale -> name
    actors: dict[str, str] = field(default_factory=dict)  # "user:1" -> name, "token:3" -> name

    def topic(self, purpose: str, locale: str) -> str:
        names = self.topics.get(purpose)
        if not names:
            return purpose
        return names.get(locale) or next(iter(names.values()), purpose)

    def actor(self, actor: str) -> str:
        return self.actors.get(actor, actor)


def load_labels(s: Session, tenant_id: int) -> Labels:
    """Topic, staff and token names of one tenant (no personal data of contacts)."""
    labels = Labels()
    for t in s.scalars(select(Topic).where(Topic.tenant_id == tenant_id)):
        labels.topics[f"newsletter:{t.slug}"] = dict(t.names) or {"": t.slug}
    for uid, name, email in s.execute(
        select(StaffUser.id, StaffUser.name, StaffUser.email).where(StaffUser.tenant_id == tenant_id)
    ):
        labels.actors[f"user:{uid}"] = name or email
    for tid, name in s.execute(select(ApiToken.id, ApiToken.name).where(ApiToken.tenant_id == tenant_id)):
        labels.actors[f"token:{tid}"] = f"API: {name}"
    return labels
