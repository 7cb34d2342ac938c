"""Sending outgoing webhooks: claim with leases, sign, POST with aiohttp, back off, disable (M4).

At least once: a row is claimed (state `running`, attempt + 1, a lease) in one transaction, sent
outside it, and completed fenced by (id, attempt); a crashed worker's lease expires and the row is
claimed again, so receivers deduplicate by the event id. Failed tries wait 30 s doubling up to
12 hours, for up to three days; an endpoint that has not succeeded for three days is disabled and
the admin shows why. Only https targets that resolve to public addresses are called unless the
operator sets KONSENT_ALLOW_PRIVATE_URLS=true (S8): the resolver itself refuses private addresses,
so a name that changes its answer between check and connection cannot reach inside.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from sqlalchemy import delete, select, update

from konsent.domain import webhooks as rules
from konsent.flows.context import Konsent
from konsent.flows.webhooks import endpoints as webhooks
from konsent.store.tables import IdempotencyKey, WebhookDelivery, WebhookEndpoint
from konsent.store.types import utcnow

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
BATCH = 20
USER_AGENT = "konsent-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    attempt: int
    endpoint_id: int
    url: str
    body: bytes
    signature: str
    event_id: str
    event_type: str


class PublicResolver(ThreadedResolver):
    """A resolver that drops private, loopback and link-local answers (S8)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        public = []
        for r in found:
            try:
                rules.check_address(r["host"], allow_private=False)
            except rules.UrlRefused:
                continue
            public.append(r)
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public


def claim(ctx: Konsent, limit: int, now: datetime) -> list[Attempt]:
    """Lease up to `limit` due deliveries and build their signed requests."""
    with ctx.db.write() as s:
        due = (
            select(WebhookDelivery.id)
            .where(
                ((WebhookDelivery.state == "pending") & (WebhookDelivery.run_at <= now))
                | ((WebhookDelivery.state == "running") & (WebhookDelivery.lease_until < now))
            )
            .order_by(WebhookDelivery.run_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due.scalar_subquery()))
            .values(
                state="running",
                attempt=WebhookDelivery.attempt + 1,
                lease_until=now + timedelta(seconds=LEASE_SECONDS),
            )
            .returning(WebhookDelivery.id, WebhookDelivery.attempt)
        ).all()
        out: list[Attempt] = []
        stamp = int(now.timestamp())
        for delivery_id, attempt in sorted(rows):
            d = s.get(WebhookDelivery, delivery_id)
            assert d is not None
            ep = s.get(WebhookEndpoint, d.endpoint_id)
            if ep is None or not ep.active:
                d.state, d.last_error = "failed", "endpoint disabled"
                continue
            payload = dict(d.payload)
            if ep.include_personal:
                extra = webhooks.personal_details(ctx, s, d.tenant_id, payload.get("data") or {})
                if extra:
                    payload["data"] = {**payload["data"], "personal": extra}
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            secrets = webhooks.signing_secrets(ctx, s, ep, now)
            out.append(
                Attempt(
                    delivery_id,
                    attempt,
                    ep.id,
                    ep.url,
                    body,
                    rules.signature_header(secrets, stamp, body),
                    d.event_id,
                    d.event_type,
                )
            )
        return out


async def send(http: aiohttp.ClientSession, a: Attempt, timeout_s: float) -> tuple[int | None, str]:
    """POST one event; the status code (None when none came) and an error text without personal data."""
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        rules.SIGNATURE_HEADER: a.signature,
        "Konsent-Event-Id": a.event_id,
        "Konsent-Event-Type": a.event_type,
    }
    try:
        async with http.post(
            a.url,
            data=a.body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            await resp.read()
            return resp.status, "" if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except TimeoutError:
        return None, "timeout"
    except (aiohttp.ClientError, OSError) as exc:
        return None, type(exc).__name__


def complete(ctx: Konsent, results: list[tuple[Attempt, int | None, str]], now: datetime) -> None:
    """Record outcomes, fenced by (id, attempt): done, or pending again after backoff, or failed."""
    with ctx.db.write() as s:
        for a, status, error in results:
            d = s.get(WebhookDelivery, a.delivery_id)
            if d is None or d.state != "running" or d.attempt != a.attempt:
                continue  # the lease expired and another worker owns it now
            d.last_status, d.lease_until = status, None
            ep = s.get(WebhookEndpoint, a.endpoint_id)
            if status is not None and 200 <= status < 300:
                d.state, d.delivered_at, d.last_error = "done", now, ""
                if ep is not None:
                    ep.failing_since = None
                continue
            d.last_error = error[:300]
            if rules.gives_up(d.created_at, now):
                d.state = "failed"
            else:
                d.state, d.run_at = "pending", now + rules.backoff(d.attempt)
            if ep is not None and ep.failing_since is None:
                ep.failing_since = now
        webhooks.disable_failing(s, now)


def housekeeping(ctx: Konsent, now: datetime) -> None:
    """Disable endpoints failing for days; forget idempotency keys after a day and old deliveries."""
    with ctx.db.write() as s:
        webhooks.disable_failing(s, now)
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - timedelta(hours=24)))
        s.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.state.in_(("done", "failed")),
                WebhookDelivery.created_at < now - timedelta(days=30),
            )
        )


def _connector(ctx: Konsent) -> aiohttp.TCPConnector:
    if ctx.settings.allow_private_urls:
        return aiohttp.TCPConnector(limit=20)
    return aiohttp.TCPConnector(limit=20, resolver=PublicResolver())


async def run_once(ctx: Konsent, http: aiohttp.ClientSession) -> int:
    """Claim one batch, send it concurrently, record the outcomes; return how many were claimed."""
    batch = await asyncio.to_thread(claim, ctx, BATCH, utcnow())
    if not batch:
        return 0
    timeout = ctx.settings.webhook_timeout_seconds
    sent = await asyncio.gather(*(send(http, a, timeout) for a in batch))
    results = [(a, status, err) for a, (status, err) in zip(batch, sent, strict=True)]
    await asyncio.to_thread(complete, ctx, results, utcnow())
    return len(batch)


async def drain(ctx: Konsent, rounds: int = 50) -> int:
    """Send until nothing is due (tests and the CLI)."""
    total = 0
    async with aiohttp.ClientSession(connector=_connector(ctx)) as http:
        for _ in range(rounds):
            n = await run_once(ctx, http)
            total += n
            if n == 0:
                break
    return total


async def run(ctx: Konsent, stop: threading.Event | asyncio.Event) -> None:
    """The worker's webhook loop: poll, send, and once a minute the housekeeping."""
    last_housekeeping = 0.0
    async with aiohttp.ClientSession(connector=_connector(ctx)) as http:
        while not stop.is_set():
            n = 0
            try:
                if time.monotonic() - last_housekeeping > 60:
                    last_housekeeping = time.monotonic()
                    await asyncio.to_thread(housekeeping, ctx, utcnow())
                n = await run_once(ctx, http)
            except Exception:
                log.exception("webhook delivery error")
            if n == 0:
                await asyncio.sleep(max(0.2, ctx.settings.worker_poll_seconds))
