"""The send guard: consent rows share-locked while their messages are on the wire (C4, invariant 1).

Split from `delivery.outbox` (the claim and the completion): the guard is what a withdrawal
meets between the claim and the provider's answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from konsent.channels.base import SendOutcome, SendResult
from konsent.delivery.outbox import Job
from konsent.domain.purposes import ConsentStatus
from konsent.flows.context import Konsent
from konsent.store.sql import among
from konsent.store.tables import ChannelAccount, Consent, OutboxRow

CONSENT_CHANGING = SendResult(SendOutcome.RETRY_AFTER, retry_after_s=0.5, error_code="consent_changing")


class SendGuard:
    """Holds the consent rows of a chunk of jobs share-locked while they are on the wire (C4).

    Opened right before the sends: jobs whose consent was withdrawn since the claim are
    dropped, and a withdrawal that comes in while the chunk is being sent waits (its
    FOR UPDATE on the consent row) until the sends are done. So once a withdrawal has
    committed, nothing more goes to the provider for that contact and purpose. On
    SQLite, without row locks, the check is a fresh read right before the sends.
    """

    def __init__(self, ctx: Konsent, jobs: Sequence[Job]) -> None:
        self.conn = ctx.db.engine.connect()
        self.conn.begin()
        marketing = [j for j in jobs if j.purpose != "service"]
        active: set[tuple[int, str]] = set()
        busy: set[tuple[int, str]] = set()
        if marketing:
            pg = ctx.db.is_postgres

            def query(contacts: set[int]) -> Any:
                return select(Consent.contact_id, Consent.purpose).where(
                    among(Consent.contact_id, contacts, postgres=pg),  # one cached statement on PostgreSQL
                    Consent.purpose.in_(sorted({j.purpose for j in marketing})),
                    Consent.status == ConsentStatus.ACTIVE.value,
                )

            wanted = {(j.contact_id, j.purpose) for j in marketing}
            q = query({c for c, _ in wanted})
            if pg:
                # SKIP LOCKED: a consent row being changed right now must not deadlock us with a
                # withdrawal that covers several contacts; its job simply waits for the next round.
                locking = q.with_for_update(read=True, skip_locked=True)
                active = {(c, p) for c, p in self.conn.execute(locking)}
                missing = wanted - active
                if missing:  # withdrawn (dropped) or being changed right now (busy): read without locks
                    busy = {(c, p) for c, p in self.conn.execute(query({c for c, _ in missing}))} - active
            else:
                active = {(c, p) for c, p in self.conn.execute(q)}
        self.allowed: list[Job] = []
        self.dropped: list[Job] = []  # consent withdrawn since the claim
        self.busy: list[Job] = []  # consent row being changed: back to the queue
        for j in jobs:
            key = (j.contact_id, j.purpose)
            if j.purpose == "service" or key in active:
                self.allowed.append(j)
            elif key in busy:
                self.busy.append(j)
            else:
                self.dropped.append(j)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.rollback()
        self.conn.close()


def accounts_with_work(ctx: Konsent, now: datetime) -> list[int]:
    """Channel accounts that have due messages (a small table checked against an index)."""
    with ctx.db.read() as s:
        due = (
            select(OutboxRow.id)
            .where(
                OutboxRow.channel_account_id == ChannelAccount.id,
                OutboxRow.state == "available",
                OutboxRow.run_at <= now,
            )
            .exists()
        )
        return list(s.scalars(select(ChannelAccount.id).where(due).order_by(ChannelAccount.id)).all())
