"""Data-subject rights: erasure, rectification, objection, the request log, suppression (D2-D5, C7).

Export lives in `privacy_export`; keyword handling for DATEN / LÖSCHEN / INFO is `on_keyword`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, func, select, update
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.domain.errors import DomainError, InvalidInput, NotFound
from konsent.domain.purposes import ConsentStatus
from konsent.domain.retention import one_month_later
from konsent.flows import audit
from konsent.flows.consent import grants as consent_flow
from konsent.flows.contact_data.index import index_name
from konsent.flows.contacts import address_of, get_contact, identities
from konsent.flows.context import Konsent
from konsent.flows.webhooks.events import emit
from konsent.store.chain import append_ledger
from konsent.store.tables import (
    AuditEntry,
    Base,
    Consent,
    Contact,
    Conversation,
    ErasureNote,
    Message,
    OutboxRow,
    PrivacyRequest,
    SimulatorMail,
    SimulatorPhone,
    SuppressionEntry,
)
from konsent.store.types import utcnow

log = logging.getLogger(__name__)

KINDS = ("access", "erasure", "rectification", "objection")
CHANNELS = ("keyword", "portal", "staff", "email", "letter", "phone")
STATES = ("open", "confirming", "done", "rejected")


class LinkGone(DomainError):
    code = "gone"
    message = "This link has expired or was already used."


class Suppressed(DomainError):
    code = "suppressed"
    message = "This address withdrew or was erased; it can only come back by a fresh opt-in."


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- suppression list (C7) -----------------------------------------------------------------------


def suppression_hash(ctx: Konsent, s: Session, tenant_id: int, address: str) -> str:
    """Keyed hash of an address, the same for every channel (a number is a number)."""
    return ctx.keys.index(s, tenant_id, "suppress", address.strip())


def suppress(ctx: Konsent, s: Session, tenant_id: int, address: str, reason: str) -> None:
    h = suppression_hash(ctx, s, tenant_id, address)
    exists = s.scalar(
        select(SuppressionEntry.id).where(
            SuppressionEntry.tenant_id == tenant_id, SuppressionEntry.address_hash == h
        )
    )
    if exists is None:
        s.add(SuppressionEntry(tenant_id=tenant_id, address_hash=h, reason=reason))


def is_suppressed(ctx: Konsent, s: Session, tenant_id: int, address: str) -> bool:
    h = suppression_hash(ctx, s, tenant_id, address)
    return (
        s.scalar(
            select(SuppressionEntry.id).where(
                SuppressionEntry.tenant_id == tenant_id, SuppressionEntry.address_hash == h
            )
        )
        is not None
    )


def check_not_suppressed(ctx: Konsent, s: Session, tenant_id: int, address: str) -> None:
    """For import and API paths that add contacts without the contact's own new opt-in (C7)."""
    if is_suppressed(ctx, s, tenant_id, address):
        raise Suppressed()


# --- request log (D5) ----------------------------------------------------------------------------


def log_request(
    s: Session,
    tenant_id: int,
    kind: str,
    channel: str,
    *,
    contact_id: int | None = None,
    received_at: datetime | None = None,
    handled_by: str = "",
    state: str = "open",
    note: str = "",
) -> PrivacyRequest:
    """Record a data-subject request; it is due one month after receipt (D5, Art. 12(3))."""
    if kind not in KINDS:
        raise InvalidInput("kind must be one of {kinds}", kinds=", ".join(KINDS))
    if channel not in CHANNELS:
        raise InvalidInput("channel must be one of {channels}", channels=", ".join(CHANNELS))
    if len(note) > 500:
        raise InvalidInput(detail="note: at most 500 characters")
    received = received_at or utcnow()
    req = PrivacyRequest(
        tenant_id=tenant_id,
        contact_id=contact_id,
        kind=kind,
        channel=channel,
        state=state,
        received_at=received,
        due_at=one_month_later(received),
        handled_by=handled_by,
        note=note,
        completed_at=received if state == "done" else None,
    )
    s.add(req)
    s.flush()
    data = {"privacy_request_id": req.id, "kind": kind, "channel": channel, "contact_id": contact_id}
    emit(s, tenant_id, "privacy_request.opened", {**data, "due_at": req.due_at.isoformat()}, at=received)
    if state != "open":
        emit(s, tenant_id, "privacy_request.completed", {**data, "state": state}, at=received)
    return req


def get_request(s: Session, tenant_id: int, request_id: int) -> PrivacyRequest:
    req = s.get(PrivacyRequest, request_id)
    if req is None or req.tenant_id != tenant_id:
        raise NotFound()
    return req


def close_request(s: Session, tenant_id: int, request_id: int, actor: str, state: str = "done") -> None:
    if state not in ("done", "rejected"):
        raise InvalidInput(detail="state must be done or rejected")
    req = get_request(s, tenant_id, request_id)
    req.state, req.handled_by, req.completed_at = state, actor, utcnow()
    data = {"privacy_request_id": req.id, "kind": req.kind, "contact_id": req.contact_id, "state": state}
    emit(s, tenant_id, "privacy_request.completed", data)
    audit.record(s, tenant_id, actor, "privacy.request.close", f"request:{req.id}", state=state)


def list_requests(
    s: Session, tenant_id: int, open_only: bool = False, limit: int = 200
) -> list[PrivacyRequest]:
    q = select(PrivacyRequest).where(PrivacyRequest.tenant_id == tenant_id)
    if open_only:
        q = q.where(PrivacyRequest.state.in_(("open", "confirming")))
    return list(s.scalars(q.order_by(PrivacyRequest.due_at).limit(limit)).all())


def overdue_requests(s: Session, tenant_id: int, now: datetime | None = None) -> list[PrivacyRequest]:
    """Open requests past their due date: the admin shows these as warnings (D5)."""
    now = now or utcnow()
    return list(
        s.scalars(
            select(PrivacyRequest)
            .where(
                PrivacyRequest.tenant_id == tenant_id,
                PrivacyRequest.state == "open",
                PrivacyRequest.due_at < now,
            )
            .order_by(PrivacyRequest.due_at)
        ).all()
    )


# Tables whose rows stay after an erasure: the proof (hashes and ids only), the anonymised
# request log, the tombstone itself.
_KEEP = frozenset({"consent_ledger", "privacy_requests", "contacts", "audit_log"})


def dependent_tables(column: str, exclude: frozenset[str] = frozenset()) -> list[Table]:
    """Every table with this column, found in the schema, so tables added later are covered too."""
    return [t for t in reversed(Base.metadata.sorted_tables) if column in t.c and t.name not in exclude]


def purge_contact_rows(s: Session, tenant_id: int, contact_id: int) -> int:
    """Delete every row that belongs to a contact, dependents first; return how many messages went."""
    msg_ids = select(Message.id).where(Message.tenant_id == tenant_id, Message.contact_id == contact_id)
    conv_ids = select(Conversation.id).where(
        Conversation.tenant_id == tenant_id, Conversation.contact_id == contact_id
    )
    skip = _KEEP | {"messages", "conversations"}
    steps: list[tuple[Table, Any]] = []
    steps += [(t, t.c.message_id.in_(msg_ids)) for t in dependent_tables("message_id", skip)]
    steps += [(t, t.c.conversation_id.in_(conv_ids)) for t in dependent_tables("conversation_id", skip)]
    steps += [(Message.__table__, Message.contact_id == contact_id)]  # type: ignore[list-item]
    steps += [(Conversation.__table__, Conversation.contact_id == contact_id)]  # type: ignore[list-item]
    steps += [(t, t.c.contact_id == contact_id) for t in dependent_tables("contact_id", skip)]
    n_messages = 0
    for table, cond in steps:
        where = and_(table.c.tenant_id == tenant_id, cond) if "tenant_id" in table.c else cond
        res = s.execute(delete(table).where(where), execution_options={"synchronize_session": False})
        if table.name == "messages":
            n_messages = int(res.rowcount or 0)  # type: ignore[attr-defined]
    return n_messages


# --- erasure (D2) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    contact_id: int
    messages: int
    already: bool = False


def forget_simulator_phone(ctx: Konsent, s: Session, tenant_id: int, account_id: int, address: str) -> None:
    """The simulator's mailbox and browser binding of an erased phone go with it (D2, #13)."""
    idx = ctx.keys.index(s, tenant_id, "sim-mail", address)
    for table in (SimulatorMail, SimulatorPhone):
        s.execute(
            delete(table).where(
                table.tenant_id == tenant_id,
                table.channel_account_id == account_id,
                table.address_index == idx,
            ),
            execution_options={"synchronize_session": False},
        )


def erase_contact(
    ctx: Konsent,
    s: Session,
    contact: Contact,
    *,
    source: str,
    actor: str,
    at: datetime | None = None,
) -> ErasureResult:
    """Erase a contact and destroy its key, so backups of its data become unreadable (D2).

    Kept: a suppression entry per address (keyed hash), an anonymous erasure note, the
    contact row as a tombstone (ids are never reused, so the consent ledger, which holds
    only the id and hashes, can never point at someone else), and the ledger itself.
    """
    at = at or utcnow()
    tid = contact.tenant_id
    if contact.erased_at is not None:
        return ErasureResult(contact.id, 0, already=True)
    for ident in identities(s, contact):
        with contextlib.suppress(crypto.DecryptionError):
            address = address_of(ctx, s, contact, ident)
            suppress(ctx, s, tid, address, "erased")
            forget_simulator_phone(ctx, s, tid, ident.channel_account_id, address)
    # Lock the outbox rows first (the order a worker's claim takes them), then remove them all.
    s.scalars(
        select(OutboxRow.id)
        .where(OutboxRow.tenant_id == tid, OutboxRow.contact_id == contact.id)
        .with_for_update()
    ).all()
    s.execute(
        delete(OutboxRow).where(OutboxRow.tenant_id == tid, OutboxRow.contact_id == contact.id),
        execution_options={"synchronize_session": False},
    )
    active = s.scalars(
        select(Consent).where(
            Consent.tenant_id == tid, Consent.contact_id == contact.id, Consent.status == ConsentStatus.ACTIVE
        )
    ).all()
    for row in active:
        append_ledger(s, tid, contact.id, row.purpose, "erased", {"source": source, "erased_at": at})
    n_messages = purge_contact_rows(s, tid, contact.id)
    s.execute(
        update(PrivacyRequest)
        .where(PrivacyRequest.tenant_id == tid, PrivacyRequest.contact_id == contact.id)
        .values(contact_id=None),
        execution_options={"synchronize_session": False},
    )
    ctx.keys.shred_contact(s, contact)
    contact.name_sealed = None
    contact.locale = None
    contact.has_contacted_us = False
    contact.last_activity_at = None
    contact.erased_at = at
    s.add(ErasureNote(tenant_id=tid, erased_at=at, source=source[:40]))
    emit(s, tid, "contact.erased", {"contact_id": contact.id, "source": source.split(":", 1)[0]}, at=at)
    audit.record(s, tid, actor, "contact.erase", f"contact:{contact.id}", source=source, messages=n_messages)
    log.info("contact %s of tenant %s erased via %s", contact.id, tid, source)
    return ErasureResult(contact.id, n_messages)


def staff_erase(ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, channel: str) -> None:
    """An agent or the DPO erases a contact (D2); logged as a completed request."""
    contact = get_contact(s, tenant_id, contact_id)
    if contact.erased_at is not None:
        raise NotFound()
    req = log_request(s, tenant_id, "erasure", channel, contact_id=contact.id, handled_by=actor)
    erase_contact(ctx, s, contact, source=f"staff:{channel}", actor=actor)
    req.state, req.completed_at = "done", utcnow()


# --- rectification (D3) and objection (D4) -------------------------------------------------------


def rectify_contact(
    ctx: Konsent,
    s: Session,
    tenant_id: int,
    actor: str,
    contact_id: int,
    *,
    name: str | None = None,
    locale: str | None = None,
    channel: str = "staff",
) -> list[str]:
    """Correct profile fields; the audit entry names the fields, never their values (D3)."""
    contact = get_contact(s, tenant_id, contact_id)
    if contact.erased_at is not None:
        raise NotFound()
    changed = []
    if name is not None:
        name = name.strip()
        if len(name) > 200:
            raise InvalidInput(detail="name: at most 200 characters")
        key = ctx.keys.contact_key(s, contact)
        contact.name_sealed = (
            crypto.seal_text(key, name, f"contact:{contact.id}:name".encode()) if name else None
        )
        index_name(ctx, s, contact, name)
        changed.append("name")
    if locale is not None:
        if locale not in ("de", "en"):
            raise InvalidInput(detail="locale must be de or en")
        contact.locale = locale
        changed.append("locale")
    if not changed:
        raise InvalidInput(detail="nothing to change")
    log_request(s, tenant_id, "rectification", channel, contact_id=contact.id, handled_by=actor, state="done")
    audit.record(s, tenant_id, actor, "contact.rectify", f"contact:{contact.id}", fields=changed)
    return changed


def object_to_marketing(
    ctx: Konsent, s: Session, tenant_id: int, actor: str, contact_id: int, channel: str = "staff"
) -> list[str]:
    """Art. 21 objection: withdraw every marketing purpose at once and remember the objection (D4)."""
    contact = get_contact(s, tenant_id, contact_id)
    if contact.erased_at is not None:
        raise NotFound()
    done = consent_flow.withdraw(s, contact, None, source=f"objection:{channel}", at=utcnow())
    contact.objected_marketing = True
    log_request(s, tenant_id, "objection", channel, contact_id=contact.id, handled_by=actor, state="done")
    audit.record(s, tenant_id, actor, "contact.object", f"contact:{contact.id}", purposes=done)
    return done


def erasure_notes(s: Session, tenant_id: int, limit: int = 100) -> list[ErasureNote]:
    return list(
        s.scalars(
            select(ErasureNote)
            .where(ErasureNote.tenant_id == tenant_id)
            .order_by(ErasureNote.id.desc())
            .limit(limit)
        ).all()
    )


def count_suppressed(s: Session, tenant_id: int) -> int:
    return int(
        s.scalar(
            select(func.count()).select_from(SuppressionEntry).where(SuppressionEntry.tenant_id == tenant_id)
        )
        or 0
    )


def audit_entries(
    s: Session, tenant_id: int, limit: int = 100, before_seq: int | None = None
) -> list[AuditEntry]:
    """The tenant's audit log, newest first (S4); entries hold ids and codes, never personal data."""
    q = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if before_seq is not None:
        q = q.where(AuditEntry.seq < before_seq)
    return list(s.scalars(q.order_by(AuditEntry.seq.desc()).limit(min(limit, 500))).all())


def overview(s: Session, tenant_id: int) -> dict[str, Any]:
    """What the privacy centre's first page shows: open and overdue requests, erasures, suppression."""
    return {
        "open": list_requests(s, tenant_id, open_only=True),
        "overdue": overdue_requests(s, tenant_id),
        "recent": list_requests(s, tenant_id, limit=50),
        "erasures": erasure_notes(s, tenant_id, limit=20),
        "suppressed": count_suppressed(s, tenant_id),
    }
