"""The outbox queue: lease-based claim with the legal-basis re-check, fenced completion (invariant 1).

Claim, as the proven Postgres queues do it: one UPDATE … WHERE id IN (SELECT …
FOR UPDATE SKIP LOCKED) RETURNING that moves rows to `running` and bumps
`attempt`. In the same transaction the consent rows of the claimed contacts
are share-locked and `may_send` is asked again; rows that fail are refused
with their reason. A withdrawal locks outbox rows first and consent rows
second, so either the claim commits before the withdrawal or it sees it.

Completion is fenced by (id, attempt, state = running): a worker whose lease
expired and whose row another worker took over cannot overwrite the outcome.
Successful sends, the common case, are recorded in bulk.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BigInteger, Table, bindparam, case, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from konsent import crypto
from konsent.channels.base import AccountConfig, OutboundContent, SendOutcome, SendResult
from konsent.delivery import recovery
from konsent.delivery.recovery import rescue  # noqa: F401 - where callers have always found it
from konsent.domain.purposes import (
    ConsentState,
    ContactSnapshot,
    Purpose,
    consent_state,
    may_send,
)
from konsent.flows.consent import grants as consent_flow
from konsent.flows.contacts import SHARED, open_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbound import status_early
from konsent.flows.organisation import channel_health
from konsent.flows.organisation.tenants import account_config
from konsent.flows.outbound import pressure, template_gate
from konsent.store.sql import among
from konsent.store.tables import (
    ChannelAccount,
    Consent,
    Contact,
    ContactIdentity,
    Message,
    OutboxRow,
    Tenant,
)

_OUTBOX = cast(Table, OutboxRow.__table__)
_MESSAGES = cast(Table, Message.__table__)


@dataclass(frozen=True)
class Job:
    """One claimed message, ready to hand to its channel."""

    outbox_id: int
    attempt: int
    max_attempts: int
    tenant_id: int
    message_id: int
    contact_id: int
    account: AccountConfig
    address: str
    content: OutboundContent
    purpose: str


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: 2, 4, 8 … seconds, capped at one hour."""
    base: float = min(3600, 2**attempt)
    return base * (0.75 + random.random() / 2)


def claim(
    ctx: Konsent,
    worker_id: str,
    limit: int,
    now: datetime,
    lease_s: int,
    account_id: int | None = None,
) -> list[Job]:
    """Claim up to `limit` due rows (of one account, if named), re-check their legal basis."""
    with ctx.db.write() as s:
        due = select(OutboxRow.id).where(OutboxRow.state == "available", OutboxRow.run_at <= now)
        if account_id is not None:
            # id breaks ties: one contact's messages queued together go out in the order they were queued
            due = due.where(OutboxRow.channel_account_id == account_id).order_by(
                OutboxRow.run_at, OutboxRow.id
            )
        else:
            due = due.order_by(OutboxRow.run_at, OutboxRow.id)
        due = due.limit(limit).with_for_update(skip_locked=True)
        claimed = s.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(due.scalar_subquery()))
            .values(
                state="running",
                attempt=OutboxRow.attempt + 1,
                lease_until=now + timedelta(seconds=lease_s),
                locked_by=worker_id[:64],
                sending_at=None,
            )
            .returning(
                OutboxRow.id,
                OutboxRow.attempt,
                OutboxRow.max_attempts,
                OutboxRow.tenant_id,
                OutboxRow.message_id,
                OutboxRow.contact_id,
                OutboxRow.channel_account_id,
                OutboxRow.purpose,
                OutboxRow.min_text_version,
                OutboxRow.run_at,
            )
        ).all()
        if not claimed:
            return []
        # RETURNING comes in no particular order; jobs go out oldest first (one contact's in order)
        return _check_and_load(ctx, s, sorted(claimed, key=lambda r: (r.run_at, r.id)), now)


def _among(ctx: Konsent, col: Any, ids: Iterable[int]) -> Any:
    return among(col, ids, postgres=ctx.db.is_postgres)


_CONTACT_COLUMNS = (
    Contact.id,
    Contact.tenant_id,
    Contact.wrapped_key,
    Contact.key_version,
    Contact.has_contacted_us,
    Contact.erased_at,
    Contact.unreachable,
    Contact.objected_marketing,
)


def _check_and_load(ctx: Konsent, s: Session, rows: Sequence[Any], now: datetime) -> list[Job]:
    contact_ids = {r.contact_id for r in rows}
    # Plain rows, not ORM objects: the batch only reads them.
    contacts = {
        c.id: c for c in s.execute(select(*_CONTACT_COLUMNS).where(_among(ctx, Contact.id, contact_ids)))
    }
    ctx.keys.preload(s, contacts.values())  # one key-store query for the whole batch
    consents: dict[int, dict[str, ConsentState]] = defaultdict(dict)
    q = select(
        Consent.contact_id, Consent.purpose, Consent.status, Consent.text_version, Consent.changed_at
    ).where(_among(ctx, Consent.contact_id, contact_ids), Consent.purpose.in_({r.purpose for r in rows}))
    if ctx.db.is_postgres:
        q = q.with_for_update(read=True, of=Consent)  # FOR SHARE: a withdrawal in flight must finish first
    for cid, purpose, status, version, changed in s.execute(q):
        consents[cid][purpose] = consent_state(status, version, changed)
    idents = {
        (cid, acc): sealed
        for cid, acc, sealed in s.execute(
            select(
                ContactIdentity.contact_id, ContactIdentity.channel_account_id, ContactIdentity.address_sealed
            ).where(_among(ctx, ContactIdentity.contact_id, contact_ids))
        )
    }
    bodies = dict(
        s.execute(
            # the clear text of a message whose stored body is redacted (flows.privacy.redaction)
            select(Message.id, func.coalesce(Message.secret_sealed, Message.body_sealed)).where(
                _among(ctx, Message.id, [r.message_id for r in rows])
            )
        )
        .tuples()
        .all()
    )
    accounts: dict[int, AccountConfig] = {}
    purposes: dict[str, Purpose] = {}
    # A newsletter page shares one sealed body: opened and parsed once per batch, not per row.
    shared: dict[bytes, OutboundContent] = {}
    jobs: list[Job] = []
    refused: list[tuple[int, int, str]] = []
    switched_off: set[int] = set()
    held: list[int] = []
    for row in rows:
        contact = contacts.get(row.contact_id)
        sealed = idents.get((row.contact_id, row.channel_account_id))
        if contact is None or contact.tenant_id != row.tenant_id or sealed is None:
            refused.append((row.id, row.message_id, "gone: the contact no longer exists"))
            continue
        snap = ContactSnapshot.of(contact, consents.get(contact.id, {}))
        parsed = purposes.get(row.purpose)
        if parsed is None:
            parsed = purposes[row.purpose] = Purpose.parse(row.purpose)
        decision = may_send(snap, parsed, now, row.min_text_version)
        if not decision:
            refused.append((row.id, row.message_id, f"{decision.reason}: {decision.detail}"))
            continue
        if row.channel_account_id not in accounts:
            acc = s.get(ChannelAccount, row.channel_account_id)
            assert acc is not None
            if not acc.active:
                switched_off.add(acc.id)
            accounts[row.channel_account_id] = _account_config(ctx, s, acc)
        if row.channel_account_id in switched_off:
            held.append(row.id)  # switched off: kept for when it is switched on again (U5)
            continue
        try:
            key = ctx.keys.contact_key(s, cast(Contact, contact))
            address = crypto.open_text(key, sealed, f"contact:{contact.id}:address".encode())
            blob = bodies[row.message_id]
            content = shared.get(blob) if blob[:2] == SHARED else None
            if content is None:
                body = open_for_contact(ctx, s, cast(Contact, contact), "message", blob)
                content = OutboundContent.from_dict(json.loads(body))
                if blob[:2] == SHARED:
                    shared[blob] = content
        except crypto.DecryptionError:
            refused.append((row.id, row.message_id, "erased: the contact's key was destroyed"))
            continue
        jobs.append(
            Job(
                outbox_id=row.id,
                attempt=row.attempt,
                max_attempts=row.max_attempts,
                tenant_id=row.tenant_id,
                message_id=row.message_id,
                contact_id=row.contact_id,
                account=accounts[row.channel_account_id],
                address=address,
                content=content,
                purpose=row.purpose,
            )
        )
    jobs, late = template_gate.check(s, jobs)  # the template's category now, not when queued (T4)
    refused += late
    if refused:
        _refuse(s, refused, now)
    if held:
        # back to waiting without spending an attempt; switching the account on releases them
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(held))
            .values(state=HELD, attempt=OutboxRow.attempt - 1, lease_until=None, locked_by=None)
            .execution_options(synchronize_session=False)
        )
    return _contact_pressure(ctx, s, jobs, now)


def _contact_pressure(ctx: Konsent, s: Session, jobs: list[Job], now: datetime) -> list[Job]:
    """Frequency cap and quiet hours (#17, M5): marketing over the cap is not sent, marketing in the
    contact's quiet hours goes back to the queue until they end; transactional messages pass."""
    return pressure.hold_back(ctx, s, jobs, now)


HELD = "held"  # the channel account is switched off; the row waits for it (U5)

# An account's secrets unsealed once per process, not once per claimed batch: keyed by the sealed
# bytes themselves (re-sealed whenever the secrets or the tenant key change) and the settings.
_ACCOUNTS: dict[tuple[int, str, bytes, str], AccountConfig] = {}


def _account_config(ctx: Konsent, s: Session, acc: ChannelAccount) -> AccountConfig:
    settings = json.dumps([ctx.settings.base_url, acc.settings], sort_keys=True, default=str)
    key = (acc.id, acc.kind, acc.secrets_sealed or b"", settings)
    found = _ACCOUNTS.get(key)
    if found is None:
        if len(_ACCOUNTS) > 256:
            _ACCOUNTS.clear()
        found = _ACCOUNTS[key] = account_config(ctx, s, acc)
    return found


def _refuse(s: Session, refused: list[tuple[int, int, str]], now: datetime) -> None:
    """Refused at claim time: the legal basis is gone; the reason is kept (invariant 1)."""
    s.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == bindparam("oid"))
        .values(state="refused", last_error=bindparam("reason"), finished_at=now),
        [{"oid": oid, "reason": reason[:300]} for oid, _, reason in refused],
    )
    s.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id == bindparam("mid"))
        .values(status="refused", status_reason=bindparam("reason"), updated_at=now),
        [{"mid": mid, "reason": reason[:300]} for _, mid, reason in refused],
    )


WITHDRAWN_BEFORE_SEND = "withdrawn: consent withdrawn after the claim, before the send"


def complete(ctx: Konsent, results: Sequence[tuple[Job, SendResult | None]], now: datetime) -> None:
    """Record the outcome of a batch of sends in one transaction, fenced by attempt."""
    if results:
        with ctx.db.write() as s:
            complete_in(ctx, s, results, now)


def complete_in(
    ctx: Konsent,
    s: Session,
    results: Sequence[tuple[Job, SendResult | None]],
    now: datetime,
    opt_outs: list[tuple[int, str]] | None = None,
) -> None:
    """`complete` inside the caller's transaction (the worker's group commit, `delivery.recorder`).

    A result of None means the worker dropped the job before sending because
    the consent was withdrawn meanwhile; it is refused like a claim-time refusal.
    """
    sent = [(j, r) for j, r in results if r is not None and r.outcome is SendOutcome.SENT]
    other = [(j, r) for j, r in results if r is not None and r.outcome is not SendOutcome.SENT]
    dropped = [j for j, r in results if r is None]
    if sent:
        _complete_sent(ctx, s, sent, now)
        channel_health.note_sent(s, (j.account.id for j, _ in sent), now)
    failures: dict[int, tuple[int, str]] = {}
    for job, res in other:
        if res is not None and res.outcome is not SendOutcome.RETRY_AFTER:  # a rate limit is no failure
            n, _ = failures.get(job.account.id, (0, ""))
            failures[job.account.id] = (n + 1, f"{res.error_code or res.outcome.value}: {res.error_text}")
    if failures:
        channel_health.note_failures(s, failures, now)
    if dropped:
        _refuse(s, [(j.outbox_id, j.message_id, WITHDRAWN_BEFORE_SEND) for j in dropped], now)
    for job, res in other:
        row = s.scalars(
            select(OutboxRow).where(
                OutboxRow.id == job.outbox_id,
                OutboxRow.attempt == job.attempt,
                OutboxRow.state == "running",
            )
        ).one_or_none()
        if row is None:
            continue
        msg = s.get(Message, job.message_id)
        assert msg is not None
        if res.outcome is SendOutcome.UNKNOWN and _unknown(ctx, s, row, msg, job, now):
            continue
        if res.outcome is SendOutcome.MARKETING_OPT_OUT and opt_outs is not None:
            opt_outs.append((job.contact_id, job.account.kind))  # withdrawn by the caller, later
            res = SendResult(SendOutcome.PERMANENT, error_code=res.error_code, error_text=res.error_text)
        _apply(s, row, msg, job, res, now)


def lock_current(ctx: Konsent, s: Session, jobs: Sequence[Job]) -> set[tuple[int, int]]:
    """Lock the rows of these jobs whose claim is still current, skipping rows locked by others;
    the current claims as (id, attempt): a stale job of the same row is not among them.

    A row locked by someone else is most likely in a withdrawal that waits for the consent locks
    of a send guard (its cancelling UPDATE keeps the lock of a row it re-checked and skipped), and
    that guard waits for this very group commit: waiting here would close the circle.
    """
    if not jobs:
        return set()
    q = select(OutboxRow.id, OutboxRow.attempt).where(
        _fenced(ctx, [(j.outbox_id, j.attempt) for j in jobs]), OutboxRow.state == "running"
    )
    if ctx.db.is_postgres:
        q = q.with_for_update(skip_locked=True)
    return {(i, a) for i, a in s.execute(q)}


def mark_sending(
    ctx: Konsent, s: Session, jobs: Sequence[Job], now: datetime, lease_s: float
) -> set[tuple[int, int]]:
    """Record that these jobs are about to go on the wire; the (id, attempt) claims that may be sent.

    A job whose row was rescued meanwhile (its lease ran out while it waited for its pacing
    slot) is not marked and must not be sent: another worker owns it now. Neither is a job whose
    row is locked by someone else right now (`lock_current`); the lease brings it back unsent.
    """
    current = lock_current(ctx, s, jobs)
    if not current:
        return set()
    s.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_([i for i, _ in current]))
        .values(sending_at=now, lease_until=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    return current


def _unknown(ctx: Konsent, s: Session, row: OutboxRow, msg: Message, job: Job, now: datetime) -> bool:
    """A timeout: wait for the echo, or settle at most once; False to retry as before (#14)."""
    if recovery.echoes(ctx, job.account.kind):
        row.state, row.lease_until = "unconfirmed", None
        row.run_at = now + timedelta(seconds=ctx.settings.echo_grace_seconds)
        msg.status_reason, msg.updated_at = recovery.WAITING, now
        return True
    tenant = s.get(Tenant, job.tenant_id)
    if recovery.policy(tenant.settings if tenant else None, job.purpose) == recovery.AT_MOST_ONCE:
        s.flush()
        recovery.settle_unknown(s, [(row.id, msg.id)], now)
        s.expire(row)
        s.expire(msg)
        return True
    return False


def _fenced(ctx: Konsent, pairs: list[tuple[int, int]]) -> Any:
    """`(id, attempt) IN pairs`: only the claim that is still current may complete its row."""
    if ctx.db.is_postgres:  # two arrays zipped by unnest: one cached statement for any batch size
        ids = bindparam(None, [i for i, _ in pairs], type_=postgresql.ARRAY(BigInteger))
        attempts = bindparam(None, [a for _, a in pairs], type_=postgresql.ARRAY(BigInteger))
        return tuple_(OutboxRow.id, OutboxRow.attempt).in_(select(func.unnest(ids), func.unnest(attempts)))
    return tuple_(OutboxRow.id, OutboxRow.attempt).in_(pairs)


def _complete_sent(ctx: Konsent, s: Session, sent: list[tuple[Job, SendResult]], now: datetime) -> None:
    done = {
        (i, a)
        for i, a in s.execute(
            update(OutboxRow)
            .where(_fenced(ctx, [(j.outbox_id, j.attempt) for j, _ in sent]), OutboxRow.state == "running")
            .values(state="done", finished_at=now, lease_until=None)
            .returning(OutboxRow.id, OutboxRow.attempt)
            .execution_options(synchronize_session=False)
        )
    }
    mine = [(j, r) for j, r in sent if (j.outbox_id, j.attempt) in done]
    if not mine:
        return
    m = _MESSAGES.c
    s.execute(
        update(_MESSAGES)
        .where(m.id == bindparam("mid"))
        .values(
            provider_id=bindparam("pid"),
            secret_sealed=None,  # sent: the clear link or code is not kept (flows.privacy.redaction)
            status=case((or_(m.status == "queued", m.status == "retrying"), "sent"), else_=m.status),
            updated_at=now,
        ),
        [{"mid": j.message_id, "pid": r.provider_id} for j, r in mine],
    )
    apply_early_statuses(s, mine)


def apply_early_statuses(s: Session, sent: list[tuple[Job, SendResult]]) -> None:
    """Status webhooks that overtook this batch's provider ids are applied now (CH4)."""
    by_account: dict[int, dict[str, int]] = defaultdict(dict)
    for j, r in sent:
        if r.provider_id:
            by_account[j.account.id][r.provider_id] = j.message_id
    status_early.apply_early(s, by_account)


def _apply(s: Session, row: OutboxRow, msg: Message, job: Job, res: SendResult, now: datetime) -> None:
    out = res.outcome
    msg.updated_at = now
    reason = f"{res.error_code or out.value}: {res.error_text}".strip(": ")[:300]
    row.last_error = reason
    if out is SendOutcome.RETRY_AFTER:
        row.state = "available"
        row.attempt -= 1  # a rate limit spends no attempt
        row.run_at = now + timedelta(seconds=res.retry_after_s or 1.0)
        row.lease_until = None
        return
    if out in (SendOutcome.TRANSIENT, SendOutcome.UNKNOWN):
        if out is SendOutcome.UNKNOWN:
            msg.status_reason = recovery.RESENT
        if row.attempt < row.max_attempts:
            row.state = "available"
            row.run_at = now + timedelta(seconds=backoff_seconds(row.attempt))
            row.lease_until = None
            msg.status = "retrying"
            return
        row.state, row.finished_at = "discarded", now
        prefix = "unknown outcome: " if out is SendOutcome.UNKNOWN else ""
        msg.status, msg.status_reason = (
            "failed",
            f"{prefix}gave up after {row.attempt} attempts: {reason}"[:300],
        )
        return
    row.state, row.finished_at = "discarded", now
    msg.status, msg.status_reason = "failed", reason
    contact = s.get(Contact, job.contact_id)
    if contact is None:
        return
    if out is SendOutcome.UNREACHABLE:
        contact.unreachable = True
    elif out is SendOutcome.MARKETING_OPT_OUT:
        consent_flow.withdraw(s, contact, None, source="provider_opt_out", at=now, channel=job.account.kind)
