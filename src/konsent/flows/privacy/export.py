"""Access and portability: a ZIP with data.json and index.html behind a single-use link (D1).

The ZIP is built at once and stored sealed with the contact's own key, so an erasure
(which destroys that key) also makes any copy of it unreadable. Schema: docs/PRIVACY.md.
"""

from __future__ import annotations

import html
import io
import json
import secrets
import zipfile
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain import interactive, received
from konsent.domain.errors import NotFound
from konsent.flows import audit
from konsent.flows.contact_data import attributes as contact_attributes
from konsent.flows.contact_data import files as agent_files
from konsent.flows.contact_data import labels as contact_labels
from konsent.flows.contacts import address_of, contact_name, get_contact, identities, open_for_contact
from konsent.flows.context import Konsent
from konsent.flows.privacy import proof
from konsent.flows.privacy.rights import LinkGone, log_request, token_digest
from konsent.flows.texts import N_
from konsent.i18n import t
from konsent.store.tables import (
    ChannelAccount,
    Contact,
    Conversation,
    Message,
    PrivacyExport,
    PrivacyRequest,
    Tenant,
)
from konsent.store.types import utcnow

FORMAT = "konsent-export/1"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_data(
    ctx: Konsent,
    s: Session,
    contact: Contact,
    at: datetime | None = None,
    files: list[agent_files.OpenedFile] | None = None,
) -> dict[str, Any]:
    """Everything konsent holds about one contact, as JSON-ready data (schema in docs/PRIVACY.md);
    `files`, when the caller has opened them already, are listed without opening them again."""
    at = at or utcnow()
    tenant = s.get(Tenant, contact.tenant_id)
    assert tenant is not None
    ctx.keys.contact_key(s, contact)  # a shredded key fails here, before anything is read
    files = agent_files.files_of(ctx, s, contact) if files is None else files
    accounts = {
        a.id: a for a in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant.id))
    }
    proof_doc = proof.proof_document(s, contact, at)
    convs = s.scalars(
        select(Conversation)
        .where(Conversation.tenant_id == tenant.id, Conversation.contact_id == contact.id)
        .order_by(Conversation.id)
    ).all()
    by_conv: dict[int | None, list[dict[str, Any]]] = {c.id: [] for c in convs}
    by_conv[None] = []
    rows = s.execute(
        select(
            Message.id,
            Message.conversation_id,
            Message.channel_account_id,
            Message.direction,
            Message.purpose,
            Message.body_sealed,
            Message.status,
            Message.status_reason,
            Message.created_at,
            Message.updated_at,
        )
        .where(Message.tenant_id == tenant.id, Message.contact_id == contact.id)
        .order_by(Message.id)
    ).all()
    for r in rows:
        body = json.loads(open_for_contact(ctx, s, contact, "message", r.body_sealed))
        item = {
            "id": r.id,
            "direction": r.direction,
            "channel": accounts[r.channel_account_id].kind if r.channel_account_id in accounts else None,
            "purpose": r.purpose,
            "text": body.get("text", ""),
            "template": body.get("template"),
            "options": interactive.offered(body),  # buttons, list rows, a link button (CH5)
            "kind": body.get("kind") or "text",
            "details": received.details_of(body),
            "refers_to": body.get("ref"),
            "status": r.status,
            "status_reason": r.status_reason,
            "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at),
        }
        by_conv.setdefault(r.conversation_id if r.conversation_id in by_conv else None, []).append(item)
    requests = s.scalars(
        select(PrivacyRequest)
        .where(PrivacyRequest.tenant_id == tenant.id, PrivacyRequest.contact_id == contact.id)
        .order_by(PrivacyRequest.id)
    ).all()
    return {
        "format": FORMAT,
        "generated_at": at.isoformat(),
        "controller": {"name": tenant.name, "privacy_url": tenant.privacy_url},
        "profile": {
            "id": contact.id,
            "name": contact_name(ctx, s, contact),
            "locale": contact.locale,
            "created_at": _iso(contact.created_at),
            "last_activity_at": _iso(contact.last_activity_at),
            "has_contacted_us": contact.has_contacted_us,
            "unreachable": contact.unreachable,
            "objected_to_marketing": contact.objected_marketing,
            "identities": [
                {
                    "channel": accounts[i.channel_account_id].kind,
                    "channel_account": accounts[i.channel_account_id].name,
                    "address": address_of(ctx, s, contact, i),
                    "first_seen_at": _iso(i.created_at),
                    "last_inbound_at": _iso(i.last_inbound_at),
                }
                for i in identities(s, contact)
            ],
        },
        "labels": [r.name for r in contact_labels.labels_of(s, tenant.id, contact.id)],
        "files": [_file_entry(f) for f in files],
        "attributes": _attributes(ctx, s, contact),
        "consents": proof_doc["current_state"],
        "consent_proof": {
            "ledger": proof_doc["ledger"],
            "consent_texts": proof_doc["consent_texts"],
            "chain_verification": proof_doc["chain_verification"],
            "how_to_verify": proof_doc["how_to_verify"],
        },
        "conversations": [
            {
                "id": c.id,
                "channel": accounts[c.channel_account_id].kind if c.channel_account_id in accounts else None,
                "state": c.state,
                "started_at": _iso(c.started_at),
                "closed_at": _iso(c.closed_at),
                "messages": by_conv.get(c.id, []),
            }
            for c in convs
        ],
        "other_messages": by_conv[None],
        "privacy_requests": [
            {
                "kind": r.kind,
                "channel": r.channel,
                "state": r.state,
                "received_at": _iso(r.received_at),
                "due_at": _iso(r.due_at),
                "completed_at": _iso(r.completed_at),
            }
            for r in requests
        ],
    }


def _file_path(f: agent_files.OpenedFile) -> str:
    """Where a file lies inside the ZIP: its id keeps two files of the same name apart."""
    return f"files/{f.row.id}-{f.name}"


def _file_entry(f: agent_files.OpenedFile) -> dict[str, Any]:
    return {
        "id": f.row.id,
        "name": f.name,
        "kind": f.row.kind,
        "type": f.row.mime,
        "size": f.row.size,
        "message_id": f.row.message_id,
        "conversation_id": f.row.conversation_id,
        "sent_at": _iso(f.row.created_at),
        "path": _file_path(f),
    }


def _attributes(ctx: Konsent, s: Session, contact: Contact) -> list[dict[str, Any]]:
    """The contact's attribute values with what each is kept for and how long (D1, L1)."""
    values = contact_attributes.values_of(ctx, s, contact)
    return [
        {
            "key": d.key,
            "name": d.name,
            "value": values[d.key],
            "purpose": d.purpose,
            "retention": d.retention,
            "retention_days": d.retention_days,
        }
        for d in contact_attributes.list_attributes(s, contact.tenant_id)
        if d.key in values
    ]


def render_html(data: dict[str, Any], locale: str | None = None) -> str:
    """A readable page of the same data in the contact's language, self-contained (no scripts, no
    external files)."""
    e = html.escape

    words = (
        N_("Data export"), N_("Profile"), N_("Labels"), N_("Files sent to you"), N_("Consents"),
        N_("Purpose"), N_("Status"), N_("Since"), N_("Proof (consent ledger)"),
        N_("Conversations and messages"),
    )  # fmt: skip
    w = {word: e(t(locale, word)) for word in words}
    title = e(t(locale, "Your data at {name}", name=data["controller"]["name"]))
    generated = e(
        t(locale, "Generated {at}. The same data, machine-readable: data.json.", at=data["generated_at"])
    )
    p = data["profile"]
    out = [
        f"<!doctype html><html lang='{e(locale or 'de')}'><head><meta charset='utf-8'>"
        f"<title>{w['Data export']}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
        ".in{color:#064}.out{color:#036}</style></head><body>",
        f"<h1>{title}</h1><p>{generated}</p><h2>{w['Profile']}</h2><table>",
    ]
    for label, value in (
        (N_("Name"), p["name"]),
        (N_("Language"), p["locale"]),
        (N_("Since"), p["created_at"]),
        (N_("Last activity"), p["last_activity_at"]),
        (N_("Objected to marketing"), p["objected_to_marketing"]),
    ):
        out.append(
            f"<tr><th>{e(t(locale, label))}</th><td>{e(str(value if value is not None else ''))}</td></tr>"
        )
    for i in p["identities"]:
        out.append(f"<tr><th>{e(i['channel'])}</th><td>{e(i['address'])}</td></tr>")
    if data.get("labels"):
        out.append(f"<tr><th>{w['Labels']}</th><td>{e(', '.join(data['labels']))}</td></tr>")
    for a in data.get("attributes", []):
        kept = e(t(locale, "Purpose: {purpose}; kept: {retention} {days}", purpose=a["purpose"],
                   retention=a["retention"], days=str(a["retention_days"] or "")))  # fmt: skip
        out.append(f"<tr><th>{e(a['name'])}</th><td>{e(a['value'])}<br><small>{kept}</small></td></tr>")
    out.append("</table>")
    if data.get("files"):
        out.append(f"<h2>{w['Files sent to you']}</h2><ul>")
        for f in data["files"]:
            size, at = f["size"], f["sent_at"] or ""
            about = e(t(locale, "{type}, {size} bytes, {at}", type=f["type"], size=size, at=at))
            out.append(f"<li><a href='{e(quote(f['path']))}'>{e(f['name'])}</a> ({about})</li>")
        out.append("</ul>")
    out.append(
        f"<h2>{w['Consents']}</h2><table><tr><th>{w['Purpose']}</th><th>{w['Status']}</th>"
        f"<th>{w['Since']}</th></tr>"
    )
    for c in data["consents"]:
        out.append(
            f"<tr><td>{e(c['purpose'])}</td><td>{e(c['status'])}</td><td>{e(c['changed_at'])}</td></tr>"
        )
    out.append(f"</table><h3>{w['Proof (consent ledger)']}</h3><table>")
    for le in data["consent_proof"]["ledger"]:
        out.append(
            f"<tr><td>{le['seq']}</td><td>{e(le['purpose'])}</td><td>{e(le['action'])}</td>"
            f"<td>{e(le['recorded_at'])}</td><td><code>{e(le['hash'][:16])}…</code></td></tr>"
        )
    out.append(f"</table><h2>{w['Conversations and messages']}</h2>")
    groups = [
        (t(locale, "Conversation {id} ({channel})", id=c["id"], channel=c["channel"]), c["messages"])
        for c in data["conversations"]
    ]
    if data["other_messages"]:
        groups.append((t(locale, "Other messages"), data["other_messages"]))
    for title, msgs in groups:
        out.append(f"<h3>{e(title)}</h3><table>")
        for m in msgs:
            out.append(
                f"<tr class='{e(m['direction'])}'><td>{e(m['created_at'] or '')}</td>"
                f"<td>{e(m['direction'])}</td>"
                f"<td>{e(m['text'])}{_details_html(m)}</td><td>{e(m['status'])}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>")
    return "".join(out)


def _details_html(m: dict[str, Any]) -> str:
    """A received location, card, reaction, order ... as 'field: value' lines (CH5, D1)."""
    kind, pairs = m.get("kind") or "text", m.get("details") or []
    if kind in ("text", "button", "media", "start") and not pairs:
        return ""
    lines = "".join(f"<br>{html.escape(str(k))}: {html.escape(str(v))}" for k, v in pairs)
    return f" <em>[{html.escape(str(kind))}]</em>{lines}"


def build_zip(
    data: dict[str, Any], files: list[agent_files.OpenedFile] | None = None, locale: str | None = None
) -> bytes:
    """data.json, index.html (in `locale`, else the contact's) and, under files/, every file agents
    sent the contact (D1)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(data, ensure_ascii=False, indent=1))
        zf.writestr("index.html", render_html(data, locale or data["profile"]["locale"]))
        for f in files or []:
            zf.writestr(_file_path(f), f.data)
    return buf.getvalue()


def build_export(ctx: Konsent, s: Session, contact: Contact, at: datetime | None = None) -> bytes:
    """The whole export as one ZIP: the data and the files it lists."""
    files = agent_files.files_of(ctx, s, contact)
    tenant = s.get(Tenant, contact.tenant_id)
    locale = contact.locale or (tenant.default_locale if tenant else None)
    return build_zip(export_data(ctx, s, contact, at, files), files, locale)


def _aad(export_id: int) -> bytes:
    return f"export:{export_id}".encode()


def create_export(ctx: Konsent, s: Session, contact: Contact, actor: str, at: datetime | None = None) -> str:
    """Build the export now and return its single-use download link (D1)."""
    at = at or utcnow()
    blob = build_export(ctx, s, contact, at)
    token = secrets.token_urlsafe(32)
    row = PrivacyExport(
        tenant_id=contact.tenant_id,
        contact_id=contact.id,
        token_hash=token_digest(token),
        size=len(blob),
        created_by=actor,
        created_at=at,
        expires_at=at + timedelta(days=ctx.settings.export_ttl_days),
    )
    s.add(row)
    s.flush()
    row.content_sealed = crypto.seal(ctx.keys.contact_key(s, contact), blob, _aad(row.id))
    return f"{ctx.settings.base_url.rstrip('/')}/privacy/export/{token}"


def check_export_link(s: Session, token: str, at: datetime | None = None) -> PrivacyExport:
    """404 for a link that never existed, 410 for a used or expired one; nothing else is revealed."""
    at = at or utcnow()
    row = s.scalars(
        select(PrivacyExport).where(PrivacyExport.token_hash == token_digest(token))
    ).one_or_none()
    if row is None:
        raise NotFound()
    if row.downloaded_at is not None or row.expires_at < at or row.content_sealed is None:
        raise LinkGone()
    return row


def download_export(ctx: Konsent, s: Session, token: str, at: datetime | None = None) -> bytes:
    """Hand out the ZIP once and delete it (D1)."""
    at = at or utcnow()
    row = check_export_link(s, token, at)
    row = s.scalars(select(PrivacyExport).where(PrivacyExport.id == row.id).with_for_update()).one()
    if row.downloaded_at is not None or row.content_sealed is None:
        raise LinkGone()
    contact = s.get(Contact, row.contact_id)
    if contact is None or contact.wrapped_key is None:
        raise LinkGone()
    blob = crypto.open_sealed(ctx.keys.contact_key(s, contact), row.content_sealed, _aad(row.id))
    row.content_sealed = None
    row.downloaded_at = at
    return blob


def staff_export(ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int) -> bytes:
    """Staff produce the same export for a request received by e-mail or letter; audited (D1, S4)."""
    contact = get_contact(s, tenant_id, contact_id)
    if contact.erased_at is not None:
        raise NotFound()
    log_request(s, tenant_id, "access", "staff", contact_id=contact.id, handled_by=actor, state="done")
    audit.record(s, tenant_id, actor, "contact.export", f"contact:{contact.id}")
    return build_export(ctx, s, contact)
