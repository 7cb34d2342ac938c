"""Files agents sent a contact: name and bytes sealed with the contact's key, bound to their row (#17, D1).

One place knows how an `InboxAttachment` is sealed and opened, so the inbox that stores and
serves it and the data export that hands it back to the contact cannot drift apart. Erasing the
contact destroys the key, which leaves every copy unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.flows.context import Konsent
from konsent.store.tables import Contact, InboxAttachment


@dataclass(frozen=True)
class OpenedFile:
    """An agent's file opened with the contact's key."""

    row: InboxAttachment
    name: str
    data: bytes


def _aad(att: InboxAttachment, part: str) -> bytes:
    return f"contact:{att.contact_id}:attachment:{att.id}:{part}".encode()


def seal(ctx: Konsent, s: Session, contact: Contact, att: InboxAttachment, name: str, data: bytes) -> None:
    """Seal a flushed row's name and bytes with the contact's key, bound to the row's ids."""
    key = ctx.keys.contact_key(s, contact)
    att.filename_sealed = crypto.seal_text(key, name, _aad(att, "name"))
    att.data_sealed = crypto.seal(key, data, _aad(att, "data"))


def open_file(ctx: Konsent, s: Session, contact: Contact, att: InboxAttachment) -> OpenedFile:
    """The file's name and bytes; `crypto.DecryptionError` if they do not belong to this row."""
    key = ctx.keys.contact_key(s, contact)
    name = crypto.open_text(key, att.filename_sealed, _aad(att, "name"))
    return OpenedFile(att, name, crypto.open_sealed(key, att.data_sealed, _aad(att, "data")))


def files_of(ctx: Konsent, s: Session, contact: Contact) -> list[OpenedFile]:
    """Every file agents sent this contact, oldest first, opened (for the contact's data export)."""
    rows = s.scalars(
        select(InboxAttachment)
        .where(InboxAttachment.tenant_id == contact.tenant_id, InboxAttachment.contact_id == contact.id)
        .order_by(InboxAttachment.id)
    )
    return [open_file(ctx, s, contact, att) for att in rows]
