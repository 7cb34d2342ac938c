"""The delivery worker: claim, send concurrently, complete; plus the periodic jobs.

Database work is plain synchronous code run in threads (`asyncio.to_thread`),
so several lanes overlap: while one lane's batch is on the wire, another
claims or records. On PostgreSQL a worker sends only for the channel accounts
whose advisory lock it holds, and only the holder of the scheduler lock runs
the periodic jobs (rescue, opt-in expiry, scheduled broadcasts).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from dataclasses import replace

from konsent import metrics
from konsent.channels.base import SendOutcome, SendResult
from konsent.delivery import guard, outbox, recovery
from konsent.delivery.outbox import Job
from konsent.delivery.pacing import AccountLocks, ContactSpacing, Pacer, account_rate
from konsent.delivery.recorder import Recorder
from konsent.flows.context import Konsent
from konsent.flows.operations import heartbeat
from konsent.store.types import utcnow

log = logging.getLogger(__name__)

CONTACT_PACING = "contact_pacing"  # postponed by our own per-contact spacing, not by the provider
# A claimed job not sent because the worker is stopping (or its mark failed): back to the queue at once,
# no attempt spent (fenced: a no-op for a row another worker owns by now).
RELEASED = SendResult(SendOutcome.RETRY_AFTER, retry_after_s=0.001, error_code="released")


class Worker:
    """Works the outbox of every tenant; any number of them may run against PostgreSQL."""

    def __init__(
        self,
        ctx: Konsent,
        worker_id: str | None = None,
        *,
        lanes: int | None = None,
        batch: int | None = None,
        exclusive_accounts: bool | None = None,
    ) -> None:
        self.ctx = ctx
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self.pacer = Pacer()
        self.spacing = ContactSpacing()
        self._not_before: dict[int, float] = {}  # outbox id -> monotonic time its contact's slot opens
        s = ctx.settings
        self.lanes = max(1, lanes or 3)
        self.batch = batch or s.worker_batch
        self.exclusive = ctx.db.is_postgres if exclusive_accounts is None else exclusive_accounts
        self._sem = asyncio.Semaphore(s.worker_concurrency)
        self._locks: AccountLocks | None = None
        self._owned: list[int] = []
        self._rates: dict[int, float] = {}
        self._rr = 0
        self._last_rebalance = 0.0
        self._last_periodic = 0.0
        self._last_schedule = 0.0
        self._last_echoes = 0.0
        self._scheduler = False
        self._last_retention = time.monotonic()  # first run a minute after start (L1)
        self._retention_thread: threading.Thread | None = None
        self._inflight: dict[int, int] = {}
        self._rebalancing = threading.Lock()
        self._lock_conn_mutex = threading.Lock()
        self._started = utcnow()
        self._last_beat = -heartbeat.BEAT_EVERY_S
        self._recorder: Recorder | None = None
        self._recorder_mutex = threading.Lock()
        self.stopping = threading.Event()  # set on SIGTERM: nothing new goes on the wire
        self._stop: threading.Event | asyncio.Event | None = None

    def halting(self) -> bool:
        """Stopping: from the moment the stop event is set, not only once the main loop notices."""
        if self._stop is not None and self._stop.is_set():
            self.stopping.set()
        return self.stopping.is_set()

    def recorder(self) -> Recorder:
        with self._recorder_mutex:
            if self._recorder is None:
                self._recorder = Recorder(self.ctx, self.ctx.settings.lease_seconds)
            return self._recorder

    # ------------------------------------------------------------ sending

    async def _send_one(self, job: Job) -> tuple[Job, SendResult]:
        adapter = self.ctx.adapter(job.account.kind)
        rate = self._rates[job.account.id] = account_rate(adapter.capabilities, job.account)
        delay = self._not_before.pop(job.outbox_id, 0.0) - time.monotonic()
        if delay > 0:  # this contact's slot (see _space)
            await asyncio.sleep(delay)
        async with self._sem:
            # Pacing inside the concurrency slot: nothing waits between its token and the wire,
            # so a Retry-After that blocks the account stops every later request.
            if self.halting():
                return job, RELEASED
            waited = time.perf_counter()
            await self.pacer.acquire(job.account.id, rate)
            # "About to send", durably (group commit): only now is the row in flight (#14).
            if self.halting() or not await self.recorder().mark(job):
                return job, RELEASED
            if self.pacer.blocked(job.account.id):  # a Retry-After came in while the mark was written
                return job, RELEASED
            started = time.perf_counter()
            if started - waited > 0.001:
                metrics.PACING_WAIT.labels(job.account.kind).observe(started - waited)
            content = job.content
            if adapter.capabilities.echoes_ref:
                content = replace(content, ref=recovery.reference(self.ctx, job.outbox_id))
            latency: float | None = None
            try:
                res = await adapter.send(job.account, job.address, content)
                latency = time.perf_counter() - started
            except Exception as exc:  # an adapter bug must not kill the worker
                log.exception("channel %s send failed", job.account.kind)
                res = SendResult(
                    SendOutcome.TRANSIENT, error_code="adapter_error", error_text=type(exc).__name__
                )
        metrics.send_finished(job.account.kind, res.outcome.value, latency)
        if res.outcome is SendOutcome.RETRY_AFTER and res is not RELEASED:
            self.pacer.block(job.account.id, res.retry_after_s or 1.0)
        return job, res

    async def _send(self, job: Job) -> tuple[Job, SendResult | None]:
        """Send one job; its outcome is durable within one group commit, not at the batch's end."""
        job, res = await self._send_one(job)
        self.recorder().record([(job, res)])
        return job, res

    def _claim(self) -> list[Job]:
        s = self.ctx.settings
        if not self.exclusive:
            return outbox.claim(self.ctx, self.id, self.batch, utcnow(), s.lease_seconds)
        owned = [a for a in self._owned if not self.pacer.blocked(a)]
        if not owned:
            return []
        self._rr += 1
        acc = owned[self._rr % len(owned)]
        # Claimed rows wait for their turn in the pacer; keep that wait well inside the lease,
        # or another worker would rescue them and send twice.
        rate = self._rates.get(acc, 50.0)
        budget = max(1, int(rate * min(1.0, s.lease_seconds / 3)))
        limit = min(self.batch, budget - self._inflight.get(acc, 0))
        if limit <= 0:
            return []
        jobs = outbox.claim(self.ctx, self.id, limit, utcnow(), s.lease_seconds, account_id=acc)
        self._inflight[acc] = self._inflight.get(acc, 0) + len(jobs)
        return jobs

    def _space(self, jobs: list[Job]) -> tuple[list[Job], list[tuple[Job, SendResult | None]]]:
        """Per-contact spacing (CH3): each job gets its contact's next slot, in claim order.

        Jobs that may go now come first, so a contact waiting for its slot holds nobody else
        back; a wait that would outlast the lease postpones the row instead (no attempt spent).
        """
        now = time.monotonic()
        ready: list[tuple[float, Job]] = []
        postponed: list[tuple[Job, SendResult | None]] = []
        for job in jobs:
            caps = self.ctx.adapter(job.account.kind).capabilities
            interval = caps.per_contact_interval_s
            wait = self.spacing.reserve(job.account.id, job.contact_id, interval, caps.per_contact_burst, now)
            if wait > self.ctx.settings.lease_seconds / 4:
                self.spacing.release(job.account.id, job.contact_id, interval)
                res = SendResult(SendOutcome.RETRY_AFTER, retry_after_s=wait, error_code=CONTACT_PACING)
                postponed.append((job, res))
                continue
            if wait > 0:
                self._not_before[job.outbox_id] = now + wait
            ready.append((wait, job))
        ready.sort(key=lambda item: item[0])  # stable: one contact's messages keep their order
        return [job for _, job in ready], postponed

    def _chunks(self, jobs: list[Job]) -> list[list[Job]]:
        """A short slice of sends per guard: on PostgreSQL a withdrawal waits at most that long; on
        SQLite (no row locks) the guard's fresh read is at most that old when a message goes out."""
        rate = min(self._rates.get(j.account.id, 50.0) for j in jobs)
        size = max(1, int(rate * (0.25 if self.ctx.db.is_postgres else 0.02)))
        return [jobs[i : i + size] for i in range(0, len(jobs), size)]

    async def run_once(self) -> int:
        """Claim one batch, send it, record the outcomes; return how many were claimed."""
        if self.exclusive and time.monotonic() - self._last_rebalance > 1.0:
            await asyncio.to_thread(self._rebalance)
        claimed = await asyncio.to_thread(self._claim)
        if claimed:
            jobs, results = self._space(claimed)
            recorder = self.recorder()
            try:
                for chunk in self._chunks(jobs) if jobs else []:
                    if self.halting():
                        results += [(j, RELEASED) for j in chunk]
                        continue
                    held = await asyncio.to_thread(guard.SendGuard, self.ctx, chunk)
                    try:
                        # each send records its own outcome (`_send`); the rest is recorded here
                        await asyncio.gather(*(self._send(j) for j in held.allowed))
                    finally:
                        await asyncio.to_thread(held.close)
                    results += [(j, None) for j in held.dropped]
                    results += [(j, guard.CONSENT_CHANGING) for j in held.busy]
                recorder.record(results)
                await recorder.flush()
            finally:
                for j in claimed:
                    self._inflight[j.account.id] = self._inflight.get(j.account.id, 1) - 1
                    self._not_before.pop(j.outbox_id, None)
        return len(claimed)

    # ------------------------------------------------------------ ownership and periodic jobs

    def _lock_conn(self) -> AccountLocks:
        # Lanes and the periodic job ask from different threads: exactly one lock connection,
        # or a second one would hold account locks nobody releases (sending stalls).
        with self._lock_conn_mutex:
            if self._locks is None:
                self._locks = AccountLocks(self.ctx.db.engine.connect())
            return self._locks

    def _rebalance(self) -> None:
        if not self._rebalancing.acquire(blocking=False):
            return  # another lane is at it
        self._last_rebalance = time.monotonic()
        try:
            busy = guard.accounts_with_work(self.ctx, utcnow())
            self._owned = sorted(self._lock_conn().rebalance(busy))
        except Exception:
            log.exception("account lock rebalance failed; sending paused until it works again")
            self._owned = []
            if self._locks is not None:
                self._locks.close()
                self._locks = None
        finally:
            self._rebalancing.release()

    def periodic(self, force: bool = False) -> None:
        """Rescue expired leases, expire opt-ins, start and queue due broadcasts."""
        from konsent.flows.consent.optin import expire_opt_ins
        from konsent.flows.inbound import status_early
        from konsent.flows.outbound import broadcast

        now = time.monotonic()
        if now - self._last_beat >= heartbeat.BEAT_EVERY_S:  # every worker, scheduler or not (U6)
            self._last_beat = now
            try:
                heartbeat.beat(self.ctx, self.id, self._started, utcnow())
            except Exception:
                log.exception("worker heartbeat failed")
        if self.ctx.db.is_postgres and not self._scheduler:
            self._scheduler = self._lock_conn().try_scheduler()
            if not self._scheduler:
                return
        if force or now - self._last_periodic >= min(5.0, self.ctx.settings.lease_seconds / 2):
            self._last_periodic = now
            recovery.rescue(self.ctx, utcnow())
            status_early.reconcile(self.ctx, utcnow())
        if force or now - self._last_echoes >= 1.0:
            self._last_echoes = now
            recovery.reconcile_echoes(self.ctx, utcnow())
            with self.ctx.db.write() as s:
                expire_opt_ins(s, utcnow())
        if force or now - self._last_schedule >= 1:
            self._last_schedule = now
            broadcast.run_due(self.ctx, utcnow(), budget_s=2.0)
        if now - self._last_retention >= 60:
            self._last_retention = now
            self._start_retention()

    def _start_retention(self) -> None:
        """The deletion concept runs in its own thread, in short batches, never blocking sends (L1)."""
        from konsent.flows.privacy import retention

        if self._retention_thread is not None and self._retention_thread.is_alive():
            return

        def target() -> None:
            try:
                retention.run_if_due(self.ctx)
            except Exception:
                metrics.RETENTION_RUNS.labels("failed").inc()
                log.exception("retention run failed")
            else:
                metrics.RETENTION_RUNS.labels("ok").inc()

        self._retention_thread = threading.Thread(target=target, name="konsent-retention", daemon=True)
        self._retention_thread.start()

    async def _lane(self, stop: threading.Event | asyncio.Event) -> None:
        while not stop.is_set():
            try:
                n = await self.run_once()
            except Exception:
                log.exception("worker lane error")
                n = 0
            if n == 0:
                await asyncio.sleep(self.ctx.settings.worker_poll_seconds)

    async def run(self, stop: threading.Event | asyncio.Event) -> None:
        """Loop until `stop` is set."""
        log.info("worker %s started", self.id)
        self._stop = stop
        lanes = [asyncio.create_task(self._lane(stop)) for _ in range(self.lanes)]
        from konsent.delivery import webhooks_out  # outgoing webhooks (M4): their own loop

        lanes.append(asyncio.create_task(webhooks_out.run(self.ctx, stop)))
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self.periodic)
                except Exception:
                    log.exception("worker periodic error")
                await asyncio.sleep(0.25)
            # Graceful stop (SIGTERM): nothing new goes on the wire; what is on it is answered and
            # recorded, claimed rows not sent go back to the queue; all within stop_grace_seconds.
            self.stopping.set()
            try:
                await asyncio.wait_for(asyncio.gather(*lanes), self.ctx.settings.stop_grace_seconds)
            except TimeoutError:
                log.warning("worker %s: sends still open after the stop grace period", self.id)
        finally:
            self.close()
            try:
                await asyncio.to_thread(heartbeat.forget, self.ctx, self.id)
            except Exception:
                log.warning("worker %s could not remove its heartbeat", self.id)
        log.info("worker %s stopped", self.id)

    async def drain(self, timeout: float = 10.0) -> int:
        """Work until nothing is due (tests and the CLI); return how many rows were claimed."""
        deadline = time.monotonic() + timeout
        total = 0
        try:
            while time.monotonic() < deadline:
                if self.exclusive:
                    await asyncio.to_thread(self._rebalance)
                n = await self.run_once()
                total += n
                if n == 0:
                    return total
            return total
        finally:
            self.close()

    def close(self) -> None:
        with self._recorder_mutex:
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
        if self._locks is not None:
            self._locks.close()
            self._locks = None
            self._owned = []
            self._scheduler = False


def run_in_thread(ctx: Konsent) -> tuple[threading.Thread, threading.Event]:
    """Start an embedded worker on its own event loop (used by `konsent serve`)."""
    stop = threading.Event()

    def target() -> None:
        asyncio.run(Worker(ctx).run(stop))

    thread = threading.Thread(target=target, name="konsent-worker", daemon=True)
    thread.start()
    return thread, stop
