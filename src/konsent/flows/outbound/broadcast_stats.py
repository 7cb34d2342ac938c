"""The delivery funnel of a broadcast, and how a broadcast is shown (M3, U3): no personal data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.domain.pressure import NOT_SENT
from konsent.domain.purposes import ConsentStatus
from konsent.store.tables import Broadcast, Consent, Message, OutboxRow


@dataclass(frozen=True)
class Stats:
    """The delivery funnel of one broadcast (M3, U3)."""

    state: str
    audience: int
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    refused: int
    cancelled: int
    skipped: int
    skipped_reasons: dict[str, int]
    pending: int
    unknown_outcome: int
    opt_outs: int
    contact_pressure: int = 0  # not sent: over the frequency cap (#17, M5), never a failure
    deferred: int = 0  # waiting for the end of the contact's quiet hours

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stats(s: Session, b: Broadcast) -> Stats:
    """Counts per delivery stage, and the withdrawals this broadcast caused."""
    by_status: dict[str, int] = {
        status: n
        for status, n in s.execute(
            select(Message.status, func.count())
            .join(OutboxRow, OutboxRow.message_id == Message.id)
            .where(OutboxRow.broadcast_id == b.id, Message.tenant_id == b.tenant_id)
            .group_by(Message.status)
        )
    }
    unknown = int(
        s.scalar(
            select(func.count())
            .select_from(Message)
            .join(OutboxRow, OutboxRow.message_id == Message.id)
            .where(OutboxRow.broadcast_id == b.id, Message.status_reason.like("unknown outcome%"))
        )
        or 0
    )
    opt_outs = 0
    if b.started_at is not None:
        reached = select(OutboxRow.contact_id).where(
            OutboxRow.broadcast_id == b.id, OutboxRow.state == "done"
        )
        opt_outs = int(
            s.scalar(
                select(func.count())
                .select_from(Consent)
                .where(
                    Consent.tenant_id == b.tenant_id,
                    Consent.purpose == b.purpose,
                    Consent.status == ConsentStatus.WITHDRAWN.value,
                    Consent.changed_at >= b.started_at,
                    Consent.contact_id.in_(reached),
                )
            )
            or 0
        )
    deferred = int(
        s.scalar(
            select(func.count())
            .select_from(Message)
            .join(OutboxRow, OutboxRow.message_id == Message.id)
            .where(
                OutboxRow.broadcast_id == b.id,
                OutboxRow.state == "available",
                Message.status_reason.like("deferred: quiet hours%"),
            )
        )
        or 0
    )
    read = by_status.get("read", 0)
    delivered = by_status.get("delivered", 0) + read
    sent = by_status.get("sent", 0) + delivered
    reasons = dict(b.skipped or {})
    return Stats(
        state=b.state,
        audience=b.audience,
        queued=b.queued,
        sent=sent,
        delivered=delivered,
        read=read,
        failed=by_status.get("failed", 0),
        refused=by_status.get("refused", 0),
        cancelled=by_status.get("cancelled", 0),
        skipped=sum(reasons.values()),
        skipped_reasons=reasons,
        pending=by_status.get("queued", 0) + by_status.get("retrying", 0),
        unknown_outcome=unknown,
        opt_outs=opt_outs,
        contact_pressure=by_status.get(NOT_SENT, 0),
        deferred=deferred,
    )


def describe(b: Broadcast) -> dict[str, Any]:
    """A broadcast as the API and the admin show it (no personal data)."""
    return {
        "id": b.id,
        "name": b.name,
        "purpose": b.purpose,
        "topic": b.purpose.split(":", 1)[1],
        "state": b.state,
        "content": b.content,
        "min_text_version": b.min_text_version,
        "segment": b.segment,
        "channel_account_id": b.channel_account_id,
        "scheduled_at": b.scheduled_at.isoformat() if b.scheduled_at else None,
        "created_at": b.created_at.isoformat(),
        "started_at": b.started_at.isoformat() if b.started_at else None,
        "finished_at": b.finished_at.isoformat() if b.finished_at else None,
    }
