"""Sends of unknown outcome: reconciled by the provider's echo, or handled by a policy per purpose (#14).

A send has an unknown outcome when its request may have reached the provider but its answer was
never recorded: the worker was killed (its lease expired with `sending_at` set) or the request
timed out. What happens next depends on the channel:

* The provider echoes our opaque reference (`Capabilities.echoes_ref`: WhatsApp Cloud API and
  360dialog in `biz_opaque_callback_data` of status webhooks, Messenger and Instagram in the
  `metadata` of message echoes, the simulator in its "sent" status): the row waits in state
  `unconfirmed` for `echo_grace_seconds`. An echo marks it sent with the provider's id and
  nothing is resent; no echo within the grace period and it is sent again (reported).
* No echo (Telegram, Threema): a per-tenant policy per purpose. Newsletters default to *at
  most once* (state `unknown`, not resent, counted as "outcome unknown"); transactional
  answers (opt-in and STOP confirmations, privacy answers) default to *at least once* (sent
  again, a possible duplicate reported).

A row whose lease expired without `sending_at` never went on the wire: it goes back to the
queue silently (its attempt number still moves on with the next claim, which keeps a worker
presumed dead but only slow fenced out); only a row whose worker died on every attempt before
sending it (a poison row) is given up, with the reason.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from konsent.channels.base import REF_PREFIX
from konsent.flows.context import Konsent
from konsent.flows.inbound import status_early
from konsent.flows.organisation import delivery_policy
from konsent.store.tables import Broadcast, ChannelAccount, EarlyStatus, Message, OutboxRow, Tenant

AT_MOST_ONCE = delivery_policy.AT_MOST_ONCE
policy = delivery_policy.policy

WAITING = "unknown outcome: waiting for the provider's echo of this send"
NOT_RESENT = "unknown outcome: not sent again (at most once on a channel without echo)"
RESENT = "unknown outcome: sent again, the provider may deliver twice"
NO_ECHO_RESENT = (
    "unknown outcome: no echo within the grace period, sent again; the provider may deliver twice"
)
CONFIRMED = "reconciled: the provider's echo confirmed the send"
OPEN_STATES = ("available", "running", "unconfirmed")  # rows still to be worked on


def reference(ctx: Konsent, outbox_id: int) -> str:
    """The opaque reference of an outbox row sent with its message: a keyed hash, no personal data."""
    key = ctx.keys.derived_key("outbox-ref")
    return REF_PREFIX + hmac.digest(key, b"outbox:%d" % outbox_id, "sha256").hex()[:28]  # one C call


def echoes(ctx: Konsent, kind: str) -> bool:
    """Whether the channel echoes our reference (so an unknown outcome can be reconciled)."""
    return bool(getattr(ctx.adapter(kind).capabilities, "echoes_ref", False))


def _back() -> Any:
    """Where a row goes back to: the queue, or paused / cancelled with its broadcast."""
    paused = select(Broadcast.id).where(Broadcast.state == "paused").scalar_subquery()
    cancelled = select(Broadcast.id).where(Broadcast.state == "cancelled").scalar_subquery()
    return case(
        (OutboxRow.broadcast_id.in_(paused), "paused"),
        (OutboxRow.broadcast_id.in_(cancelled), "cancelled"),
        else_="available",
    )


def rescue(ctx: Konsent, now: datetime) -> int:
    """Rows whose lease expired (their worker died): back to the queue, waiting for an echo, or settled.

    Returns how many rows were handled.
    """
    with ctx.db.write() as s:
        expired = and_(OutboxRow.state == "running", OutboxRow.lease_until < now)
        q = select(
            OutboxRow.id,
            OutboxRow.sending_at,
            OutboxRow.purpose,
            OutboxRow.tenant_id,
            OutboxRow.channel_account_id,
            OutboxRow.message_id,
            OutboxRow.attempt,
            OutboxRow.max_attempts,
        ).where(expired)
        if ctx.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        rows = s.execute(q.limit(5000)).all()
        if not rows:
            return 0
        kinds = dict(
            s.execute(
                select(ChannelAccount.id, ChannelAccount.kind).where(
                    ChannelAccount.id.in_({r.channel_account_id for r in rows})
                )
            )
            .tuples()
            .all()
        )
        settings: dict[int, dict[str, Any]] = dict(
            s.execute(select(Tenant.id, Tenant.settings).where(Tenant.id.in_({r.tenant_id for r in rows})))
            .tuples()
            .all()
        )
        never, waiting, settled, again, poisoned = [], [], [], [], []
        for r in rows:
            if r.sending_at is None and r.attempt >= r.max_attempts:
                poisoned.append(r)  # its worker died every time before sending it: a poison row
            elif r.sending_at is None:
                never.append(r.id)
            elif echoes(ctx, kinds.get(r.channel_account_id, "")):
                waiting.append(r)
            elif policy(settings.get(r.tenant_id), r.purpose) == AT_MOST_ONCE:
                settled.append(r)
            else:
                again.append(r)
        back = _back()
        if never:  # never on the wire: nothing to report
            # The attempt number stays: the next claim moves it on, so a worker presumed dead that
            # is only slow stays fenced out (its mark and its answer name the old attempt).
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(never), expired)
                .values(state=back, lease_until=None, locked_by=None, run_at=now)
                .execution_options(synchronize_session=False)
            )
        if poisoned:
            _give_up(s, [(r.id, r.message_id) for r in poisoned], "lease expired on the last attempt", now)
        if waiting:
            grace = timedelta(seconds=ctx.settings.echo_grace_seconds)
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_([r.id for r in waiting]), expired)
                .values(state="unconfirmed", lease_until=None, locked_by=None, run_at=now + grace)
                .execution_options(synchronize_session=False)
            )
            _reason(s, [r.message_id for r in waiting], WAITING, now)
        if settled:
            settle_unknown(s, [(r.id, r.message_id) for r in settled], now)
        if again:
            ids = [r.id for r in again]
            _reason(s, [r.message_id for r in again], RESENT, now)
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), expired, OutboxRow.attempt >= OutboxRow.max_attempts)
                .values(state="discarded", finished_at=now, last_error="lease expired on the last attempt")
                .execution_options(synchronize_session=False)
            )
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), expired)
                .values(state=back, lease_until=None, locked_by=None, run_at=now)
                .execution_options(synchronize_session=False)
            )
        return len(rows)


def _give_up(s: Session, rows: list[tuple[int, int]], why: str, now: datetime) -> None:
    """No attempts left: the row is discarded and its message failed, with the reason."""
    s.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_([oid for oid, _ in rows]))
        .values(state="discarded", finished_at=now, lease_until=None, last_error=why)
        .execution_options(synchronize_session=False)
    )
    s.execute(
        update(Message)
        .where(Message.id.in_([mid for _, mid in rows]))
        .values(status="failed", status_reason=f"gave up: {why}"[:300], updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _reason(s: Session, message_ids: list[int], reason: str, now: datetime) -> None:
    s.execute(
        update(Message)
        .where(Message.id.in_(message_ids))
        .values(status_reason=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def settle_unknown(s: Session, rows: list[tuple[int, int]], now: datetime) -> None:
    """At most once: the row is finished with an unknown outcome, never sent again."""
    s.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_([oid for oid, _ in rows]))
        .values(state="unknown", finished_at=now, lease_until=None, last_error=NOT_RESENT[:300])
        .execution_options(synchronize_session=False)
    )
    s.execute(
        update(Message)
        .where(Message.id.in_([mid for _, mid in rows]))
        .values(status="unknown", status_reason=NOT_RESENT, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def reconcile_echoes(ctx: Konsent, now: datetime) -> tuple[int, int]:
    """Rows waiting for an echo: confirmed by one (sent, not resent), or after the grace period sent
    again. Returns (confirmed, sent again)."""
    with ctx.db.write() as s:
        q = (
            select(
                OutboxRow.id,
                OutboxRow.channel_account_id,
                OutboxRow.message_id,
                OutboxRow.tenant_id,
                OutboxRow.run_at,
                OutboxRow.attempt,
                OutboxRow.max_attempts,
            )
            .where(OutboxRow.state == "unconfirmed")
            .order_by(OutboxRow.run_at)
            .limit(5000)
        )
        if ctx.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        rows = s.execute(q).all()
        if not rows:
            return 0, 0
        by_ref = {reference(ctx, r.id): r for r in rows}
        confirmed: dict[int, tuple[Any, str]] = {}
        for acc, pid, ref in s.execute(
            select(EarlyStatus.channel_account_id, EarlyStatus.provider_id, EarlyStatus.ref).where(
                EarlyStatus.ref.in_(list(by_ref)), EarlyStatus.status != "failed"
            )
        ):
            r = by_ref.get(ref or "")
            if r is not None and r.channel_account_id == acc:
                confirmed.setdefault(r.id, (r, pid))
        if confirmed:
            _confirm(s, list(confirmed.values()), now)
        due = [r for r in rows if r.id not in confirmed and r.run_at <= now]
        if due:
            last = [r for r in due if r.attempt >= r.max_attempts]
            if last:
                why = "unknown outcome: no echo after the last attempt"
                _give_up(s, [(r.id, r.message_id) for r in last], why, now)
            ids = [r.id for r in due if r.attempt < r.max_attempts]
            _reason(s, [r.message_id for r in due if r.attempt < r.max_attempts], NO_ECHO_RESENT, now)
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), OutboxRow.state == "unconfirmed")
                .values(
                    state=_back(),
                    run_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        return len(confirmed), len(due)


def _confirm(s: Session, hits: list[tuple[Any, str]], now: datetime) -> None:
    """The echo names the provider's id: the message is sent, its statuses that waited are applied."""
    s.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_([r.id for r, _ in hits]))
        .values(state="done", finished_at=now, lease_until=None, last_error="")
        .execution_options(synchronize_session=False)
    )
    table = cast(Table, Message.__table__)
    m = table.c
    s.connection().execute(
        update(table)
        .where(m.id == bindparam("mid"))
        .values(
            provider_id=bindparam("pid"),
            status=case((or_(m.status == "queued", m.status == "retrying"), "sent"), else_=m.status),
            status_reason=CONFIRMED,
            updated_at=now,
        ),
        [{"mid": r.message_id, "pid": pid[:200]} for r, pid in hits],
    )
    by_account: dict[int, dict[str, int]] = defaultdict(dict)
    for r, pid in hits:
        by_account[r.channel_account_id][pid] = r.message_id
    status_early.apply_early(s, by_account)
