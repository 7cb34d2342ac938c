"""Channel health as the admin sees it: last inbound, last successful send, last error (U5).

Writes are cheap on purpose (they sit on the hot paths): a success updates the account
row only when the stored time is more than a minute old, so one row is not rewritten per
message; a failure is recorded every time, with the provider's code and text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from konsent.store.tables import ChannelAccount, OutboxRow

RESOLUTION = timedelta(seconds=60)
GAVE_UP_WINDOW = timedelta(hours=24)


def note_inbound(s: Session, account_id: int, at: datetime, known: datetime | None = None) -> None:
    """A message arrived on this account.

    `known` is the stored time as read earlier in this transaction: if that is recent already, the
    update could change nothing (the stored time only moves forward) and is not sent."""
    if known is not None and known >= at - RESOLUTION:
        return
    s.execute(
        update(ChannelAccount)
        .where(
            ChannelAccount.id == account_id,
            or_(ChannelAccount.last_inbound_at.is_(None), ChannelAccount.last_inbound_at < at - RESOLUTION),
        )
        .values(last_inbound_at=at)
        .execution_options(synchronize_session=False)
    )


def note_sent(s: Session, account_ids: Iterable[int], now: datetime) -> None:
    """The provider accepted messages of these accounts: the failure streak ends."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    s.execute(
        update(ChannelAccount)
        .where(
            ChannelAccount.id.in_(ids),
            or_(
                ChannelAccount.last_sent_at.is_(None),
                ChannelAccount.last_sent_at < now - RESOLUTION,
                ChannelAccount.failing_sends > 0,
            ),
        )
        .values(last_sent_at=now, failing_sends=0)
        .execution_options(synchronize_session=False)
    )


def note_failures(s: Session, failures: dict[int, tuple[int, str]], now: datetime) -> None:
    """Failed send attempts per account: (how many, the last provider code and text)."""
    for account_id, (count, error) in sorted(failures.items()):
        s.execute(
            update(ChannelAccount)
            .where(ChannelAccount.id == account_id)
            .values(
                last_error_at=now,
                last_error=error[:300],
                failing_sends=ChannelAccount.failing_sends + count,
            )
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class Health:
    state: str  # off / failing / ok / new
    last_inbound_at: datetime | None
    last_sent_at: datetime | None
    last_error_at: datetime | None
    last_error: str
    failing_sends: int  # failed attempts since the last successful send
    gave_up_24h: int  # messages given up on in the last 24 hours
    held: int  # messages waiting while the account is switched off


def health(s: Session, acc: ChannelAccount, now: datetime) -> Health:
    counts = dict(
        s.execute(
            select(OutboxRow.state, func.count())
            .where(
                OutboxRow.channel_account_id == acc.id,
                or_(
                    OutboxRow.state == "held",
                    (OutboxRow.state == "discarded") & (OutboxRow.finished_at >= now - GAVE_UP_WINDOW),
                ),
            )
            .group_by(OutboxRow.state)
        )
        .tuples()
        .all()
    )
    gave_up = int(counts.get("discarded", 0))
    if not acc.active:
        state = "off"
    elif acc.failing_sends > 0 or gave_up > 0:
        state = "failing"
    elif acc.last_sent_at or acc.last_inbound_at:
        state = "ok"
    else:
        state = "new"
    return Health(
        state,
        acc.last_inbound_at,
        acc.last_sent_at,
        acc.last_error_at,
        acc.last_error,
        acc.failing_sends,
        gave_up,
        int(counts.get("held", 0)),
    )


@dataclass(frozen=True)
class ChannelState:
    id: int
    name: str
    kind: str
    health: Health


def summary(s: Session, tenant_id: int, now: datetime) -> list[ChannelState]:
    """Every channel account of the tenant with its health, for the dashboard."""
    accounts = s.scalars(
        select(ChannelAccount).where(ChannelAccount.tenant_id == tenant_id).order_by(ChannelAccount.id)
    ).all()
    return [ChannelState(a.id, a.name, a.kind, health(s, a, now)) for a in accounts]
