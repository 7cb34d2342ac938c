"""Enqueueing outbound messages: the one door every sending path goes through (C5, invariant 1)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent, fit
from konsent.domain.content import problems, require_valid
from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound, WindowClosed
from konsent.domain.purposes import ConsentState, ContactSnapshot, Purpose, consent_state, may_send
from konsent.flows.contacts import seal_for_contact, seal_shared, snapshot
from konsent.flows.context import Konsent
from konsent.flows.privacy.redaction import has_secret, redact
from konsent.store.sql import among
from konsent.store.tables import ChannelAccount, Consent, Contact, ContactIdentity, Message, OutboxRow
from konsent.store.types import utcnow


def parse_purpose(value: str) -> Purpose:
    try:
        return Purpose.parse(value)
    except ValueError as exc:
        raise InvalidInput(detail=str(exc)) from exc


def primary_identity(s: Session, contact: Contact, channel_account_id: int | None = None) -> ContactIdentity:
    """The identity to reach a contact on: the named account, else the one they wrote from last."""
    q = select(ContactIdentity).where(
        ContactIdentity.tenant_id == contact.tenant_id, ContactIdentity.contact_id == contact.id
    )
    if channel_account_id is not None:
        q = q.where(ContactIdentity.channel_account_id == channel_account_id)
    ident = s.scalars(q.order_by(ContactIdentity.last_inbound_at.desc().nulls_last())).first()
    if ident is None:
        raise NotFound(message="The contact cannot be reached on that channel.")
    return ident


def enqueue_message(
    ctx: Konsent,
    s: Session,
    contact: Contact,
    purpose: str,
    content: OutboundContent,
    *,
    channel_account_id: int | None = None,
    conversation_id: int | None = None,
    author: str = "",
    min_text_version: int = 0,
    at: datetime | None = None,
) -> Message:
    """Queue one message after `may_send` allowed it; raise NoLegalBasis otherwise (C5)."""
    at = at or utcnow()
    p = parse_purpose(purpose)
    require_valid(content)  # bad input is 422 before any question of legal basis
    decision = may_send(snapshot(s, contact), p, at, min_text_version)
    if not decision:
        raise NoLegalBasis(purpose=str(p), reason=decision.detail, reason_code=decision.reason)
    ident = primary_identity(s, contact, channel_account_id)
    account = s.get(ChannelAccount, ident.channel_account_id)
    assert account is not None and account.tenant_id == contact.tenant_id
    caps = ctx.adapter(account.kind).capabilities
    require_valid(content, caps)
    # Buttons, a list or a link the channel cannot show go as numbered text; stored as sent (CH5).
    content = fit(content, caps)
    require_valid(content, caps)
    if caps.service_window_hours is not None and content.template is None:
        last = ident.last_inbound_at
        if last is None or at - last > timedelta(hours=caps.service_window_hours):
            raise WindowClosed(hours=caps.service_window_hours)
    # A link or code meant for the contact alone is stored redacted; the clear text only for delivery.
    shown = replace(content, text=redact(content.text)) if has_secret(content.text) else content
    msg = Message(
        tenant_id=contact.tenant_id,
        conversation_id=conversation_id,
        contact_id=contact.id,
        channel_account_id=account.id,
        direction="out",
        purpose=str(p),
        body_sealed=seal_for_contact(ctx, s, contact, "message", json.dumps(shown.as_dict())),
        secret_sealed=(
            seal_for_contact(ctx, s, contact, "message", json.dumps(content.as_dict()))
            if shown is not content
            else None
        ),
        status="queued",
        author=author,
        created_at=at,
        updated_at=at,
    )
    s.add(msg)
    s.flush()
    s.add(
        OutboxRow(
            tenant_id=contact.tenant_id,
            message_id=msg.id,
            contact_id=contact.id,
            channel_account_id=account.id,
            purpose=str(p),
            min_text_version=min_text_version,
            max_attempts=ctx.settings.max_attempts,
            run_at=at,
            created_at=at,
        )
    )
    return msg


class ContactLike(Protocol):
    """The columns of a contact that `enqueue_many` needs (an ORM object or a Core row)."""

    id: int
    tenant_id: int
    wrapped_key: bytes | None
    key_version: int
    has_contacted_us: bool
    erased_at: datetime | None
    unreachable: bool
    objected_marketing: bool


@dataclass(frozen=True)
class Draft:
    """One message of a batch: its content, and a template to fall back on outside the 24-h window."""

    contact: ContactLike
    content: OutboundContent
    channel_account_id: int
    fallback: OutboundContent | None = None


@dataclass
class BatchResult:
    """What `enqueue_many` did: queued message ids per contact, skip reasons per contact."""

    queued: dict[int, int] = field(default_factory=dict)  # contact id -> message id
    skipped: dict[int, str] = field(default_factory=dict)  # contact id -> reason code


def enqueue_many(
    ctx: Konsent,
    s: Session,
    drafts: Sequence[Draft],
    purpose: str,
    *,
    author: str = "",
    min_text_version: int = 0,
    broadcast_id: int | None = None,
    at: datetime | None = None,
    shared: bool = False,
) -> BatchResult:
    """Queue many messages of one purpose; `may_send` is asked for every contact (C5, M3).

    `shared`: the contents name nobody (an unpersonalised newsletter), so each distinct body
    is sealed once with the tenant key instead of once per contact.

    The same rules as `enqueue_message`, loaded in bulk: a contact without a
    legal basis, without an identity on the account, or outside the
    customer-service window with no template to fall back on is skipped with
    its reason code instead of raising.
    """
    at = at or utcnow()
    p = parse_purpose(purpose)
    out = BatchResult()
    if not drafts:
        return out
    tenant_id = drafts[0].contact.tenant_id
    ids = [d.contact.id for d in drafts]
    consents: dict[int, dict[str, ConsentState]] = defaultdict(dict)
    for cid, cpurpose, status, version, changed in s.execute(
        select(
            Consent.contact_id, Consent.purpose, Consent.status, Consent.text_version, Consent.changed_at
        ).where(
            Consent.tenant_id == tenant_id,
            Consent.purpose == str(p),
            among(Consent.contact_id, ids, postgres=ctx.db.is_postgres, superset_ok=True),
        )
    ):
        consents[cid][cpurpose] = consent_state(status, version, changed)
    idents: dict[tuple[int, int], datetime | None] = {}
    for cid, acc_id, last in s.execute(
        select(
            ContactIdentity.contact_id, ContactIdentity.channel_account_id, ContactIdentity.last_inbound_at
        ).where(
            ContactIdentity.tenant_id == tenant_id,
            among(ContactIdentity.contact_id, ids, postgres=ctx.db.is_postgres, superset_ok=True),
        )
    ):
        idents[(cid, acc_id)] = last
    accounts = {
        a.id: a
        for a in s.scalars(
            select(ChannelAccount).where(
                ChannelAccount.tenant_id == tenant_id,
                ChannelAccount.id.in_({d.channel_account_id for d in drafts}),
            )
        )
    }
    if not shared:
        ctx.keys.preload(s, [cast(Contact, d.contact) for d in drafts])  # one key-store query per batch
    shared_sealed: dict[int, bytes] = {}
    messages: list[dict[str, Any]] = []
    kept: list[Draft] = []
    bodies: dict[int, str] = {}  # one JSON per distinct content object, sealed per contact
    verdicts: dict[tuple[int, int], str] = {}  # (content, capabilities) -> first problem's code or ""
    fitted: dict[tuple[int, int], OutboundContent] = {}  # (content, capabilities) -> as the channel shows it
    for d in drafts:
        c = d.contact
        assert c.tenant_id == tenant_id, "one batch, one tenant"
        snap = ContactSnapshot.of(c, consents.get(c.id, {}))
        decision = may_send(snap, p, at, min_text_version)
        if not decision:
            out.skipped[c.id] = decision.reason
            continue
        account = accounts.get(d.channel_account_id)
        key = (c.id, d.channel_account_id)
        if account is None or key not in idents:
            out.skipped[c.id] = "no_identity"
            continue
        caps = ctx.adapter(account.kind).capabilities
        content = d.content
        if caps.service_window_hours is not None and content.template is None:
            last = idents[key]
            if last is None or at - last > timedelta(hours=caps.service_window_hours):
                if d.fallback is None or d.fallback.template is None or not caps.templates:
                    out.skipped[c.id] = "window_closed"
                    continue
                content = d.fallback
        verdict = verdicts.get((id(content), id(caps)))
        if verdict is None:  # one check per distinct content and channel, not per contact
            bad = problems(content, caps)
            fitted[(id(content), id(caps))] = shown = fit(content, caps)  # numbered text where needed
            bad = bad or problems(shown, caps)
            verdict = verdicts[(id(content), id(caps))] = bad[0].code if bad else ""
        content = fitted[(id(content), id(caps))]
        if verdict:
            out.skipped[c.id] = verdict
            continue
        body = bodies.get(id(content))
        if body is None:
            body = bodies[id(content)] = json.dumps(content.as_dict())
        kept.append(d)
        messages.append(
            {
                "tenant_id": tenant_id,
                "contact_id": c.id,
                "channel_account_id": account.id,
                "direction": "out",
                "purpose": str(p),
                "body_sealed": (
                    _shared_body(ctx, s, tenant_id, shared_sealed, content, body)
                    if shared
                    else seal_for_contact(ctx, s, cast(Contact, c), "message", body)
                ),
                "status": "queued",
                "status_reason": "",
                "author": author,
                "created_at": at,
                "updated_at": at,
            }
        )
    if not messages:
        return out
    if ctx.db.is_postgres:
        msg_ids = _insert_batch_pg(
            s,
            messages,
            [d.channel_account_id for d in kept],
            min_text_version=min_text_version,
            max_attempts=ctx.settings.max_attempts,
            broadcast_id=broadcast_id,
        )
    else:
        msg_ids = list(
            s.scalars(insert(Message).returning(Message.id, sort_by_parameter_order=True), messages).all()
        )
        s.execute(
            insert(OutboxRow),
            [
                {
                    "tenant_id": tenant_id,
                    "message_id": mid,
                    "contact_id": d.contact.id,
                    "channel_account_id": d.channel_account_id,
                    "purpose": str(p),
                    "min_text_version": min_text_version,
                    "state": "available",
                    "attempt": 0,
                    "max_attempts": ctx.settings.max_attempts,
                    "run_at": at,
                    "last_error": "",
                    "created_at": at,
                    "broadcast_id": broadcast_id,
                }
                for d, mid in zip(kept, msg_ids, strict=True)
            ],
        )
    out.queued = {d.contact.id: mid for d, mid in zip(kept, msg_ids, strict=True)}
    return out


def _shared_body(
    ctx: Konsent, s: Session, tenant_id: int, done: dict[int, bytes], content: OutboundContent, body: str
) -> bytes:
    """One sealed copy per distinct content of the batch, the same bytes object for every row."""
    sealed = done.get(id(content))
    if sealed is None:
        sealed = done[id(content)] = seal_shared(ctx, s, tenant_id, body)
    return sealed


_INSERT_MESSAGES = (
    "INSERT INTO messages (id, tenant_id, contact_id, channel_account_id, direction, purpose,"
    " body_sealed, status, status_reason, author, created_at, updated_at)"
    " SELECT u.id, %(tenant)s, u.c, u.a, 'out', %(purpose)s, u.b, 'queued', '', %(author)s, %(at)s, %(at)s"
    " FROM unnest(%(ids)s::bigint[], %(contacts)s::bigint[], %(accounts)s::bigint[], %(bodies)s::bytea[])"
    " AS u(id, c, a, b)"
)
_INSERT_MESSAGES_ONE_BODY = (  # a shared body: sent once, not once per row
    "INSERT INTO messages (id, tenant_id, contact_id, channel_account_id, direction, purpose,"
    " body_sealed, status, status_reason, author, created_at, updated_at)"
    " SELECT u.id, %(tenant)s, u.c, u.a, 'out', %(purpose)s, %(bodies)s::bytea, 'queued', '', %(author)s,"
    " %(at)s, %(at)s"
    " FROM unnest(%(ids)s::bigint[], %(contacts)s::bigint[], %(accounts)s::bigint[]) AS u(id, c, a)"
)


def _insert_batch_pg(
    s: Session,
    messages: list[dict[str, Any]],
    outbox_accounts: list[int],
    *,
    min_text_version: int,
    max_attempts: int,
    broadcast_id: int | None,
) -> list[int]:
    """Messages and their outbox rows as two INSERT … SELECT FROM unnest(arrays) statements.

    The per-row values travel as a few arrays and everything a batch shares (tenant, purpose,
    times, a shared body) as single parameters, so a 5,000-contact batch costs two statements
    instead of 10,000 rows formatted in Python.
    """
    first = messages[0]
    raw = s.connection().connection.dbapi_connection
    assert raw is not None
    bodies = [m["body_sealed"] for m in messages]
    one_body = all(b is bodies[0] for b in bodies)
    with cast(Any, raw).cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('messages', 'id')) FROM generate_series(1, %s)",
            (len(messages),),
        )
        ids = [int(r[0]) for r in cur.fetchall()]
        params = {
            "ids": ids,
            "contacts": [m["contact_id"] for m in messages],
            "accounts": [m["channel_account_id"] for m in messages],
            "bodies": bodies[0] if one_body else bodies,
            "tenant": first["tenant_id"],
            "purpose": first["purpose"],
            "author": first["author"],
            "at": first["created_at"],
        }
        cur.execute(_INSERT_MESSAGES_ONE_BODY if one_body else _INSERT_MESSAGES, params)
        cur.execute(
            "INSERT INTO outbox (tenant_id, message_id, contact_id, channel_account_id, purpose,"
            " min_text_version, state, attempt, max_attempts, run_at, last_error, created_at, broadcast_id)"
            " SELECT %(tenant)s, u.id, u.c, u.a, %(purpose)s, %(mtv)s, 'available', 0, %(max)s, %(at)s, '',"
            " %(at)s, %(bid)s"
            " FROM unnest(%(ids)s::bigint[], %(contacts)s::bigint[], %(oaccounts)s::bigint[]) AS u(id, c, a)",
            {
                **params,
                "oaccounts": outbox_accounts,
                "mtv": min_text_version,
                "max": max_attempts,
                "bid": broadcast_id,
            },
        )
    return ids


def _copy_rows(s: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """COPY rows into a model's table; columns left out get their Python-side scalar default."""
    table = model.__table__
    cols = [c for c in table.columns if c.name in rows[0] or _default(c) is not _NO_DEFAULT]
    defaults = {c.name: _default(c) for c in cols if c.name not in rows[0]}
    names = ", ".join(f'"{c.name}"' for c in cols)
    raw = s.connection().connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as cp:  # type: ignore[attr-defined]
        for row in rows:
            cp.write_row([row[c.name] if c.name in row else defaults[c.name] for c in cols])


_NO_DEFAULT = object()


def _default(col: Any) -> Any:
    d = col.default
    if d is None or not getattr(d, "is_scalar", False):
        if d is not None and getattr(d, "is_callable", False):
            return d.arg(None)
        return _NO_DEFAULT
    return d.arg


def message_content(ctx: Konsent, s: Session, contact: Contact, msg: Message) -> OutboundContent:
    """The content of a message (inbound text is stored in the same shape)."""
    from konsent.flows.contacts import open_for_contact

    return OutboundContent.from_dict(
        json.loads(open_for_contact(ctx, s, contact, "message", msg.body_sealed))
    )
