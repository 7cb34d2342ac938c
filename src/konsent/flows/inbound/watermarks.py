"""Statuses reported as a watermark: "every message up to this moment was read" (CH4).

Messenger and Instagram name no message in their read events (and in some delivery
events): they give a timestamp. Every outbound message of that contact on that
channel account sent at or before it (RECORDING_LAG says what konsent can know of
that) which has not reached the status yet gets it through `apply_status`, so a late
watermark never undoes a later status. Failed messages, messages still in the queue,
other contacts' and other tenants' messages are never touched.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from konsent.domain.events import StatusWatermark
from konsent.domain.status_batch import apply_status
from konsent.flows.contacts import find_identity
from konsent.flows.context import Konsent
from konsent.store.tables import ChannelAccount, Message, OutboxRow

# konsent knows two times of a sent message: when it was queued (always before the provider
# stamped it) and when the worker recorded the send (after the provider's answer, at the end of
# its batch). A message is covered when it was queued at or before the watermark and its send
# was recorded at most this long after it: a watermark equal to the stamp of the message just
# read must still cover that message, one that waited in the queue long after it must not.
RECORDING_LAG = timedelta(seconds=10)

# Statuses a message may still move from, per watermark status (never from failed or queued).
_MOVABLE = {"delivered": ("sent",), "read": ("sent", "delivered")}


def apply_watermark(ctx: Konsent, s: Session, account: ChannelAccount, ev: StatusWatermark) -> int:
    """Give every covered message of the contact the watermark's status; how many moved."""
    movable = _MOVABLE.get(ev.status)
    ident = find_identity(ctx, s, account, ev.address)
    if movable is None or ident is None or ident.tenant_id != account.tenant_id:
        return 0
    sent_by_then = exists().where(
        OutboxRow.message_id == Message.id,
        OutboxRow.tenant_id == account.tenant_id,
        OutboxRow.contact_id == ident.contact_id,  # indexed: the contact's few rows, not the queue
        OutboxRow.state == "done",
        OutboxRow.finished_at <= ev.watermark + RECORDING_LAG,
    )
    covered = s.scalars(
        select(Message)
        .where(
            Message.tenant_id == account.tenant_id,
            Message.channel_account_id == account.id,
            Message.contact_id == ident.contact_id,
            Message.direction == "out",
            Message.status.in_(movable),
            Message.created_at <= ev.watermark,
            sent_by_then,
        )
        .order_by(Message.id)
        .with_for_update()  # the same message's own statuses may arrive concurrently
    ).all()
    for msg in covered:
        apply_status(msg, ev.status, "", ev.at)
    return len(covered)
