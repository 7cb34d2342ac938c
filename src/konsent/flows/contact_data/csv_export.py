"""CSV export of contacts with the fields staff choose; every export in the audit log (M5, S4).

Only roles with `contacts.export` may run it (checked by the caller, flows.organisation.staff).
The file is built for Excel as German offices use it (UTF-8 with BOM, `;` between fields), and
no cell can start a formula: a cell beginning with = + - @ (or a tab or carriage return) gets a
leading apostrophe (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.errors import InvalidInput
from konsent.domain.purposes import ConsentStatus
from konsent.flows import audit
from konsent.flows.contact_data import attributes, labels
from konsent.flows.contact_data.search import Query, search
from konsent.flows.context import Konsent
from konsent.store.tables import ChannelAccount, Consent, Contact, ContactIdentity

BASE_FIELDS = (
    "id",
    "name",
    "addresses",
    "channels",
    "locale",
    "created_at",
    "last_activity_at",
    "labels",
    "active_consents",
)
PERSONAL = frozenset({"name", "addresses"})
CHUNK = 500
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + value if value.startswith(_DANGEROUS) else value


def available_fields(s: Session, tenant_id: int) -> list[str]:
    """What can be chosen: the base fields, then `attribute:<key>` per attribute of the tenant."""
    return [*BASE_FIELDS, *(f"attribute:{d.key}" for d in attributes.list_attributes(s, tenant_id))]


def _check_fields(s: Session, tenant_id: int, fields: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(f.strip() for f in fields if f.strip()))
    if not chosen:
        raise InvalidInput("Choose at least one field.")
    known = set(available_fields(s, tenant_id))
    for f in chosen:
        if f not in known:
            raise InvalidInput("Unknown field {field}.", field=f[:80])
    return chosen


def export_csv(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    fields: Sequence[str],
    *,
    only: Any | None = None,
    query: Query | None = None,
) -> tuple[bytes, int]:
    """The chosen fields of every contact in the caller's scope (or of a search's result), as CSV bytes,
    and the number of rows; one audit entry says who exported which fields and how many rows."""
    chosen = _check_fields(s, tenant_id, fields)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(chosen)
    rows = 0
    if query is not None and not query.empty:
        batches: Any = [search(ctx, s, tenant_id, query, only=only, limit=500)]
    else:
        batches = _all(s, tenant_id, only)
    accounts = {
        a.id: a.kind for a in s.scalars(select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id))
    }
    for batch in batches:
        for record in _records(ctx, s, tenant_id, batch, chosen, accounts):
            writer.writerow([safe_cell(record.get(f, "")) for f in chosen])
            rows += 1
    audit.record(s, tenant_id, actor, "contacts.export", "contacts", fields=chosen, rows=rows, format="csv")
    return ("\ufeff" + out.getvalue()).encode("utf-8"), rows


def _all(s: Session, tenant_id: int, only: Any | None) -> Any:
    last = 0
    while True:
        q = select(Contact).where(
            Contact.tenant_id == tenant_id, Contact.erased_at.is_(None), Contact.id > last
        )
        if only is not None:
            q = q.where(only)
        chunk = list(s.scalars(q.order_by(Contact.id).limit(CHUNK)).all())
        if not chunk:
            return
        last = chunk[-1].id
        yield chunk


def _records(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    chunk: list[Contact],
    chosen: list[str],
    accounts: dict[int, str],
) -> list[dict[str, str]]:
    ids = [c.id for c in chunk]
    ctx.keys.preload(s, chunk)
    idents: dict[int, list[ContactIdentity]] = {i: [] for i in ids}
    if {"addresses", "channels"} & set(chosen):
        for ident in s.scalars(
            select(ContactIdentity).where(
                ContactIdentity.tenant_id == tenant_id, ContactIdentity.contact_id.in_(ids)
            )
        ):
            idents[ident.contact_id].append(ident)
    consents: dict[int, list[str]] = {i: [] for i in ids}
    if "active_consents" in chosen:
        for cid, purpose in s.execute(
            select(Consent.contact_id, Consent.purpose)
            .where(
                Consent.tenant_id == tenant_id,
                Consent.contact_id.in_(ids),
                Consent.status == ConsentStatus.ACTIVE,
            )
            .order_by(Consent.purpose)
        ):
            consents[cid].append(purpose)
    tags = labels.labels_of_many(s, tenant_id, ids) if "labels" in chosen else {}
    values = (
        attributes.values_of_many(ctx, s, tenant_id, chunk)
        if any(f.startswith("attribute:") for f in chosen)
        else {}
    )
    out = []
    for c in chunk:
        rec = {
            "id": str(c.id),
            "locale": c.locale or "",
            "created_at": c.created_at.isoformat(),
            "last_activity_at": c.last_activity_at.isoformat() if c.last_activity_at else "",
            "labels": ", ".join(tags.get(c.id, [])),
            "active_consents": ", ".join(consents[c.id]),
            "channels": ", ".join(sorted({accounts.get(i.channel_account_id, "") for i in idents[c.id]})),
        }
        if PERSONAL & set(chosen):
            rec["name"] = _open(ctx, s, c, c.name_sealed, "name")
            rec["addresses"] = ", ".join(_open(ctx, s, c, i.address_sealed, "address") for i in idents[c.id])
        for key, value in values.get(c.id, {}).items():
            rec[f"attribute:{key}"] = value
        out.append(rec)
    return out


def _open(ctx: Konsent, s: Session, c: Contact, blob: bytes | None, field: str) -> str:
    if blob is None or c.wrapped_key is None:
        return ""
    try:
        return crypto.open_text(ctx.keys.contact_key(s, c), blob, f"contact:{c.id}:{field}".encode())
    except crypto.DecryptionError:
        return ""
