"""Statuses that overtook their send: applied when the send is recorded, or by the periodic reconcile (CH4).

A provider may report *sent*, *delivered* or *read* before the worker has recorded the
provider id of that message. The group commit (`status_sink`) then keeps the status as an
`EarlyStatus`; the worker applies it in the transaction that records the send
(`apply_early`), and `reconcile` closes the race where both commit at the same moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from konsent.domain.status_batch import StatusState, apply_status
from konsent.flows.context import Konsent
from konsent.flows.inbound.status_sink import _write_states
from konsent.store.tables import EarlyStatus, Message


def apply_early(s: Session, sent: dict[int, dict[str, int]]) -> None:
    """Statuses that overtook these sends ({account: {provider id: message id}}) are applied now.

    Set-wise, without ORM objects: when webhooks arrive as fast as the sends (a provider's
    "sent" often does), most statuses of a batch wait here, three per message.
    """
    e = cast(Table, EarlyStatus.__table__).c
    found: list[tuple[int, int, str, str, datetime]] = []  # (early id, message id, status, reason, at)
    for account_id, ids in sent.items():
        for eid, pid, status, reason, at in s.execute(
            select(e.id, e.provider_id, e.status, e.reason, e.at).where(
                e.channel_account_id == account_id, e.provider_id.in_(list(ids))
            )
        ):
            found.append((eid, ids[pid], status, reason, at))
    if not found:
        return
    found.sort()  # arrival order
    m = cast(Table, Message.__table__).c
    states = {
        mid: StatusState(mid, status, reason or "", updated)
        for mid, status, reason, updated in s.execute(
            select(m.id, m.status, m.status_reason, m.updated_at).where(m.id.in_({f[1] for f in found}))
        )
    }
    changed: dict[int, StatusState] = {}
    for _, mid, status, reason, at in found:
        state = states.get(mid)
        if state is not None:
            apply_status(state, status, reason, at)
            changed[mid] = state
    _write_states(s, changed.values())
    s.execute(
        delete(EarlyStatus)
        .where(EarlyStatus.id.in_([f[0] for f in found]))
        .execution_options(synchronize_session=False)
    )


def reconcile(ctx: Konsent, now: datetime, keep: timedelta = timedelta(days=1)) -> int:
    """Apply early statuses whose message got its provider id meanwhile; drop very old ones."""
    with ctx.db.write() as s:
        rows = s.execute(
            select(EarlyStatus, Message)
            .join(
                Message,
                (Message.channel_account_id == EarlyStatus.channel_account_id)
                & (Message.provider_id == EarlyStatus.provider_id)
                & (Message.direction == "out"),
            )
            .limit(5000)
        ).all()
        for e, msg in rows:
            if msg.tenant_id == e.tenant_id:
                apply_status(msg, e.status, e.reason, e.at)
            s.delete(e)
        s.execute(delete(EarlyStatus).where(EarlyStatus.at < now - keep))
        return len(rows)
