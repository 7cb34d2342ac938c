"""The delivery worker: claim, send concurrently, complete; plus the periodic jobs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time

from konsent.channels.base import SendOutcome, SendResult
from konsent.delivery import outbox
from konsent.delivery.outbox import Job
from konsent.delivery.pacing import Pacer
from konsent.flows.context import Konsent
from konsent.flows.optin import expire_opt_ins
from konsent.store.types import utcnow

log = logging.getLogger(__name__)


class Worker:
    """Works the outbox of every tenant; any number of them may run against PostgreSQL."""

    def __init__(self, ctx: Konsent, worker_id: str | None = None) -> None:
        self.ctx = ctx
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self.pacer = Pacer()
        self._sem = asyncio.Semaphore(ctx.settings.worker_concurrency)
        self._last_periodic = 0.0

    async def _send(self, job: Job) -> tuple[Job, SendResult]:
        adapter = self.ctx.adapter(job.account.kind)
        await self.pacer.acquire(job.account.id, adapter.capabilities.throughput_per_s)
        async with self._sem:
            try:
                return job, await adapter.send(job.account, job.address, job.content)
            except Exception as exc:  # an adapter bug must not kill the worker
                log.exception("channel %s send failed", job.account.kind)
                return job, SendResult(
                    SendOutcome.TRANSIENT, error_code="adapter_error", error_text=type(exc).__name__
                )

    async def run_once(self) -> int:
        """Claim one batch, send it, record the outcomes; return how many were claimed."""
        s = self.ctx.settings
        jobs = outbox.claim(self.ctx, self.id, s.worker_batch, utcnow(), s.lease_seconds)
        if jobs:
            results = await asyncio.gather(*(self._send(j) for j in jobs))
            outbox.complete(self.ctx, list(results), utcnow())
        return len(jobs)

    def periodic(self, force: bool = False) -> None:
        """Rescue expired leases and delete expired opt-ins, at most every few seconds."""
        now = time.monotonic()
        if not force and now - self._last_periodic < 5:
            return
        self._last_periodic = now
        outbox.rescue(self.ctx, utcnow())
        with self.ctx.db.write() as s:
            expire_opt_ins(s, utcnow())

    async def run(self, stop: threading.Event | asyncio.Event) -> None:
        """Loop until `stop` is set."""
        log.info("worker %s started", self.id)
        while not stop.is_set():
            try:
                self.periodic()
                n = await self.run_once()
            except Exception:
                log.exception("worker loop error")
                n = 0
            if n == 0:
                await asyncio.sleep(self.ctx.settings.worker_poll_seconds)
        log.info("worker %s stopped", self.id)

    async def drain(self, timeout: float = 10.0) -> int:
        """Work until nothing is due (tests and the CLI); return how many rows were claimed."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            n = await self.run_once()
            total += n
            if n == 0:
                return total
        return total


def run_in_thread(ctx: Konsent) -> tuple[threading.Thread, threading.Event]:
    """Start an embedded worker on its own event loop (used by `konsent serve`)."""
    stop = threading.Event()

    def target() -> None:
        asyncio.run(Worker(ctx).run(stop))

    thread = threading.Thread(target=target, name="konsent-worker", daemon=True)
    thread.start()
    return thread, stop
