"""Files agents attach to replies: checked, sealed at rest, sent through the channel's media
path, served to staff only and to the provider by a short-lived signed link (M1, S1, S8, #17).

Inbound media is not copied: a message keeps the provider's reference inside its sealed body
and staff fetch it from the provider on demand (`api_ops.media_to_fetch`). An agent's file has
no provider copy, so konsent keeps it: name and bytes sealed with the contact's key (AES-GCM,
bound to the row), in `inbox_attachments`, a row carrying the contact, conversation and message
ids, so erasure and retention remove it with them.

Every channel konsent speaks takes media by URL (WhatsApp `link`, Telegram's file URL,
Messenger's attachment `url`), so the reply carries a signed link to `/files/<token>`: usable
for this one file only, until `upload_link_seconds` have passed, signed with the tenant's
index key. Staff never see that link: the message body they read names the attachment, and
the link lives only in the body the delivery worker reads, cleared once sent
(flows.privacy.redaction).
"""

from __future__ import annotations

import hmac
import json
import mimetypes
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain import uploads
from konsent.domain.errors import FileTooLarge, FileTypeRefused, InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.contact_data import files as agent_files
from konsent.flows.contacts import open_for_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation
from konsent.flows.inbox.listing import get_conversation
from konsent.flows.organisation import staff
from konsent.flows.organisation.staff import StaffMember
from konsent.store.tables import Contact, InboxAttachment, Message
from konsent.store.types import utcnow


@dataclass(frozen=True)
class Upload:
    """A file as the browser sent it."""

    filename: str
    declared_type: str
    data: bytes


@dataclass(frozen=True)
class FileOut:
    """A stored file opened for serving; `inline` only for raster images that are what they say."""

    data: bytes
    mime: str
    filename: str
    inline: bool


def checked_type(ctx: Konsent, upload: Upload) -> str:
    """The file's MIME type if the installation accepts it and its size; else FileTooLarge/FileTypeRefused."""
    limit = ctx.settings.upload_max_bytes
    if len(upload.data) > limit:
        raise FileTooLarge(limit=max(1, round(limit / 1_000_000)))
    if not upload.data:
        raise InvalidInput(detail="the file is empty")
    mime = uploads.clean_type(upload.declared_type)
    if not mime or mime == "application/octet-stream":
        mime = uploads.clean_type(mimetypes.guess_type(upload.filename)[0] or "")
    if mime not in uploads.allowed_types(ctx.settings.upload_mime_types):
        raise FileTypeRefused(mime=mime or "?")
    return mime


def _signature(ctx: Konsent, s: Session, att: InboxAttachment, expires: int) -> str:
    return ctx.keys.keyed_hash(s, att.tenant_id, f"inbox-file:{att.id}:{expires}")[:40]


def signed_link(ctx: Konsent, s: Session, att: InboxAttachment, at: datetime) -> str:
    """The URL a provider fetches this one file from, valid for `upload_link_seconds`."""
    expires = int(at.timestamp()) + ctx.settings.upload_link_seconds
    ext = mimetypes.guess_extension(att.mime) or ""
    base = ctx.settings.base_url.rstrip("/")
    return f"{base}/files/{att.id}-{expires}-{_signature(ctx, s, att, expires)}/{att.kind}{ext}"


def reply_with_file(
    ctx: Konsent,
    s: Session,
    who: StaffMember,
    conversation_id: int,
    text: str,
    upload: Upload,
    at: datetime | None = None,
) -> Message:
    """An agent's reply carrying a file (the text is its caption), through the legal-basis check (M1)."""
    staff.require(who.role, "messages.send")
    at = at or utcnow()
    mime = checked_type(ctx, upload)
    conv = get_conversation(s, who, conversation_id)
    contact = s.get(Contact, conv.contact_id)
    assert contact is not None
    name = uploads.safe_filename(upload.filename)
    att = InboxAttachment(
        tenant_id=who.tenant_id,
        contact_id=contact.id,
        conversation_id=conv.id,
        uploaded_by=who.actor,
        kind=uploads.media_kind(mime),
        mime=mime,
        size=len(upload.data),
        filename_sealed=b"",
        data_sealed=b"",
        created_at=at,
    )
    s.add(att)
    s.flush()
    agent_files.seal(ctx, s, contact, att, name, upload.data)
    msg = conversation.reply(
        ctx, s, who, conv.id, text, at,
        media_url=signed_link(ctx, s, att, at),
        media_kind=att.kind,
        media_filename=name if att.kind == "document" else "",
    )  # fmt: skip
    att.message_id = msg.id
    _hide_link(ctx, s, contact, msg, att, name)
    audit.record(
        s, who.tenant_id, who.actor, "conversation.attachment", f"contact:{contact.id}",
        message=msg.id, attachment=att.id, mime=mime, size=att.size,
    )  # fmt: skip
    return msg


def _hide_link(
    ctx: Konsent, s: Session, contact: Contact, msg: Message, att: InboxAttachment, name: str
) -> None:
    """Staff read the attachment's name, never the signed link; only the worker's copy has it."""
    clear = msg.secret_sealed or msg.body_sealed
    shown = json.loads(open_for_contact(ctx, s, contact, "message", msg.body_sealed))
    shown.pop("media_url", None)
    shown["attachment"] = {"id": att.id, "kind": att.kind, "name": name}
    msg.secret_sealed = clear
    msg.body_sealed = seal_for_contact(ctx, s, contact, "message", json.dumps(shown))


def _open(ctx: Konsent, s: Session, att: InboxAttachment) -> FileOut:
    contact = s.get(Contact, att.contact_id)
    if contact is None or contact.wrapped_key is None:
        raise NotFound()
    try:
        opened = agent_files.open_file(ctx, s, contact, att)
    except crypto.DecryptionError as exc:
        raise NotFound() from exc
    name, data = opened.name, opened.data
    return FileOut(data, att.mime, name, uploads.serve_inline(att.mime, name, data[:1024]))


def open_for_staff(
    ctx: Konsent, s: Session, who: StaffMember, conversation_id: int, attachment_id: int
) -> FileOut:
    """A file of a conversation the caller may open (their teams' only); the access is audited (S4)."""
    conv = get_conversation(s, who, conversation_id)
    if not 0 < attachment_id < 2**63:
        raise NotFound()
    att = s.scalars(
        select(InboxAttachment).where(
            InboxAttachment.tenant_id == who.tenant_id,
            InboxAttachment.conversation_id == conv.id,
            InboxAttachment.id == attachment_id,
        )
    ).one_or_none()
    if att is None:
        raise NotFound()
    out = _open(ctx, s, att)
    audit.record(
        s, who.tenant_id, who.actor, "attachment.view", f"contact:{att.contact_id}", attachment=att.id
    )
    return out


def open_by_link(ctx: Konsent, s: Session, token: str, at: datetime | None = None) -> FileOut:
    """The file behind a provider's signed link, while it is valid; NotFound for anything else."""
    at = at or utcnow()
    parts = token.split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 18:
        raise NotFound()
    att_id, expires, given = int(parts[0]), int(parts[1]), parts[2]
    if expires < at.timestamp() or not 0 < att_id < 2**63:
        raise NotFound()
    att = s.get(InboxAttachment, att_id)
    if att is None or not hmac.compare_digest(_signature(ctx, s, att, expires), given):
        raise NotFound()
    return _open(ctx, s, att)
