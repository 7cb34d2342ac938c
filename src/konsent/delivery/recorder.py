"""The worker's group commit: "about to send" marks and send outcomes, durable within a bound (#14, M3).

Every send is preceded by a mark (`outbox.sending_at`) and followed by its outcome. Both go
to one writer thread that commits whatever has accumulated in one transaction, then the
next batch: under load a commit carries hundreds of rows, idle it carries one. A send
waits for its mark (a few milliseconds); outcomes are not waited for by the send, only by
the end of the lane's batch. So after a kill at most the requests on the wire plus one
commit's worth of answers are of unknown outcome, and rows still waiting for their pacing
slot were never marked: they go back to the queue silently (`recovery.rescue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from konsent.channels.base import SendOutcome, SendResult
from konsent.delivery import outbox, record_pg
from konsent.delivery.outbox import Job
from konsent.flows.context import Konsent
from konsent.flows.organisation import channel_health
from konsent.store.types import utcnow

log = logging.getLogger(__name__)


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


@dataclass
class _Batch:
    marks: list[tuple[Job, _Waiter]] = field(default_factory=list)
    outcomes: list[tuple[Job, SendResult | None]] = field(default_factory=list)
    barriers: list[_Waiter] = field(default_factory=list)


def _resolve(w: _Waiter, value: bool) -> None:
    def set_it() -> None:
        if not w.future.done():
            w.future.set_result(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        w.loop.call_soon_threadsafe(set_it)


class Recorder:
    """One writer thread per worker; `mark`, `record` and `flush` may be called from any event loop."""

    def __init__(self, ctx: Konsent, lease_s: float) -> None:
        self.ctx = ctx
        self.lease_s = lease_s
        self._pending = _Batch()
        self._cond = threading.Condition()
        self._closed = False
        self.commits = 0
        self._tries: dict[int, int] = {}
        self.max_commit_ms = 0.0
        self._pg = ctx.db.is_postgres
        self._conn: Any = None  # PostgreSQL: a connection kept by the writer thread (no checkout, no ping)
        self._noted: dict[int, float] = {}  # account id -> when its success was last noted (health)
        self._thread = threading.Thread(target=self._run, name="konsent-recorder", daemon=True)
        self._thread.start()

    async def mark(self, job: Job) -> bool:
        """Durably record that `job` is about to be sent; False if its claim is no longer ours."""
        w = _Waiter(asyncio.get_running_loop(), asyncio.get_running_loop().create_future())
        with self._cond:
            if self._closed:
                return False
            self._pending.marks.append((job, w))
            self._cond.notify()
        return await w.future

    def record(self, results: Sequence[tuple[Job, SendResult | None]]) -> None:
        """Queue outcomes for the next commit (not waited for)."""
        with self._cond:
            self._pending.outcomes.extend(results)
            self._cond.notify()

    async def flush(self) -> bool:
        """Wait until everything queued so far is committed; False if that commit failed."""
        w = _Waiter(asyncio.get_running_loop(), asyncio.get_running_loop().create_future())
        with self._cond:
            if self._closed and not self._thread.is_alive():
                return False
            self._pending.barriers.append(w)
            self._cond.notify()
        return await w.future

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _retry(self, later: list[tuple[Job, SendResult | None]]) -> None:
        """Outcomes whose rows were locked elsewhere (or whose claim is gone: then they are dropped
        once the row is free), tried again shortly; a row that stays locked comes back by its lease."""
        retry = [(j, r) for j, r in later if self._tries.get(j.outbox_id, 0) < 200]
        for j, _ in retry:
            self._tries[j.outbox_id] = self._tries.get(j.outbox_id, 0) + 1
        if retry:
            time.sleep(0.005)
            self.record(retry)

    def _withdraw(self, opt_outs: list[tuple[int, str]]) -> None:
        """The provider said the contact opted out of marketing: withdraw, outside the group commit
        (a withdrawal waits for send guards, which wait for the group commit)."""
        from konsent.flows.consent import grants
        from konsent.store.tables import Contact

        try:
            with self.ctx.db.write() as s:
                for contact_id, kind in opt_outs:
                    contact = s.get(Contact, contact_id)
                    if contact is not None:
                        at = utcnow()
                        grants.withdraw(s, contact, None, source="provider_opt_out", at=at, channel=kind)
        except Exception:
            log.exception("withdrawing after a provider opt-out failed")

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._pending.marks or self._pending.outcomes or self._pending.barriers):
                        if self._closed:
                            return
                        self._cond.wait(0.5)
                    batch, self._pending = self._pending, _Batch()
                ok = self._write(batch)
                for w in batch.barriers:
                    _resolve(w, ok)
        finally:
            self._drop_conn()

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        """One unit of work; on PostgreSQL on the writer's kept connection (a broken one is dropped)."""
        if not self._pg:
            with self.ctx.db.write() as s:
                yield s
            return
        if self._conn is None:
            self._conn = self.ctx.db.engine.connect()
        try:
            with Session(bind=self._conn, expire_on_commit=False) as s, s.begin():
                yield s
        except Exception:
            self._drop_conn()
            raise

    def _write(self, batch: _Batch) -> bool:
        """One transaction that never waits for a row lock someone else holds (see
        `outbox.lock_current`): outcomes of rows locked elsewhere wait for the next commit."""
        t0 = time.monotonic()
        mine: set[tuple[int, int]] = set()
        later: list[tuple[Job, SendResult | None]] = []
        opt_outs: list[tuple[int, str]] = []
        try:
            with self._transaction() as s:
                now = utcnow()
                if batch.outcomes:
                    later = self._outcomes(s, batch.outcomes, now, opt_outs)
                if batch.marks:
                    jobs = [j for j, _ in batch.marks]
                    if self._pg:
                        lease_until = now + timedelta(seconds=self.lease_s)
                        mine = record_pg.mark_sending(s, jobs, now, lease_until)
                    else:
                        mine = outbox.mark_sending(self.ctx, s, jobs, now, self.lease_s)
            ok = True
        except Exception:
            # Marks not committed: those jobs are not sent. Outcomes lost: their rows come back
            # through the lease as unknown outcomes (reconciled by echo where there is one).
            log.exception("recording sends failed")
            mine, later, ok = set(), [], False
        for job, w in batch.marks:
            _resolve(w, (job.outbox_id, job.attempt) in mine)
        if later and ok:
            self._retry(later)
        if opt_outs:
            threading.Thread(target=self._withdraw, args=(opt_outs,), daemon=True).start()
        self.commits += 1
        self.max_commit_ms = max(self.max_commit_ms, (time.monotonic() - t0) * 1000)
        return ok

    def _outcomes(
        self,
        s: Session,
        outcomes: list[tuple[Job, SendResult | None]],
        now: datetime,
        opt_outs: list[tuple[int, str]],
    ) -> list[tuple[Job, SendResult | None]]:
        """Record outcomes in the caller's transaction; returns those to try again in the next one."""
        later: list[tuple[Job, SendResult | None]] = []
        todo = outcomes
        if self._pg:  # accepted sends, the common case: one statement (`record_pg`)
            sent = [(j, r) for j, r in outcomes if r is not None and r.outcome is SendOutcome.SENT]
            todo = [(j, r) for j, r in outcomes if r is None or r.outcome is not SendOutcome.SENT]
            if sent:
                done, early = record_pg.complete_sent(s, sent, now)
                mine = [(j, r) for j, r in sent if (j.outbox_id, j.attempt) in done]
                later = [(j, r) for j, r in sent if (j.outbox_id, j.attempt) not in done]
                for j, _ in mine:
                    self._tries.pop(j.outbox_id, None)
                if mine and early:
                    outbox.apply_early_statuses(s, mine)
                if mine:
                    self._note_sent(s, {j.account.id for j, _ in mine}, now)
        if todo:
            locked = outbox.lock_current(self.ctx, s, [j for j, _ in todo])
            later += [(j, r) for j, r in todo if (j.outbox_id, j.attempt) not in locked]
            todo = [(j, r) for j, r in todo if (j.outbox_id, j.attempt) in locked]
            for j, r in todo:
                self._tries.pop(j.outbox_id, None)
                if r is not None and r.outcome is not SendOutcome.SENT:
                    self._noted.pop(j.account.id, None)  # a failure streak: the next success is noted
            outbox.complete_in(self.ctx, s, todo, now, opt_outs)
        return later

    def _note_sent(self, s: Session, accounts: set[int], now: datetime) -> None:
        """Channel health's "last sent" (U5), at most once a second per account from this worker:
        the account row is not locked and rewritten by every group commit."""
        t = time.monotonic()
        due = [a for a in accounts if t - self._noted.get(a, -1e9) >= 1.0]
        if due:
            channel_health.note_sent(s, due, now)
            for a in due:
                self._noted[a] = t
