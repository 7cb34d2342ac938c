"""The inbound path: verify, parse, store each event once, then hand it to its handler (CH2, invariant 6).

Customer messages go to `messages.on_message` (keywords → opt-in code → bot and inbox), other
provider events to `provider_events`, status-only deliveries to the group commit (`status_sink`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from konsent import metrics
from konsent.channels.base import (
    AccountConfig,
    ChannelAdapter,
    NeedsPrefetch,
    WebhookRejected,
    WebhookRequest,
)
from konsent.domain.errors import DomainError, NotFound
from konsent.domain.events import (
    Event,
    InboundMessage,
    MarketingPreference,
    ReachabilityChange,
    StatusUpdate,
    StatusWatermark,
    TemplateUpdate,
    UnknownEvent,
)
from konsent.domain.inputs import checked_event
from konsent.flows.context import Konsent
from konsent.flows.inbound import dedupe, status_sink, watermarks
from konsent.flows.inbound.messages import on_message, reply
from konsent.flows.inbound.provider_events import on_preference, on_reachability, on_status
from konsent.flows.outbound import template_lifecycle
from konsent.store.tables import (
    ChannelAccount,
    Counter,
    Tenant,
)

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: str = "OK"
    events: int = 0
    duplicates: int = 0
    # Stored events the provider wants acknowledged, and the account to do it with (`acknowledge`).
    to_acknowledge: tuple[InboundMessage, ...] = ()
    account: AccountConfig | None = None
    # Parsing needs something fetched from the provider first (`adapter.prefetch`, then call again).
    needs_prefetch: AccountConfig | None = None


def bump_counter(ctx: Konsent, name: str) -> None:
    """Count without storing anything about the request (CH2)."""
    with ctx.db.write() as s:
        updated = s.execute(update(Counter).where(Counter.name == name).values(value=Counter.value + 1))
        if not updated.rowcount:  # type: ignore[attr-defined]
            s.add(Counter(name=name, value=1))


def _count(s: Session, name: str) -> None:
    """Count inside the caller's transaction, without anything about the request."""
    updated = s.execute(update(Counter).where(Counter.name == name).values(value=Counter.value + 1))
    if not updated.rowcount:  # type: ignore[attr-defined]
        s.add(Counter(name=name, value=1))


def receive_webhook(
    ctx: Konsent,
    route_key: str,
    request: WebhookRequest,
    *,
    try_fast: bool = True,
    defer_prefetch: bool = False,
) -> WebhookResult:
    """Handle one provider delivery; every event in it counts, each stored at most once.

    When parsing needs a network lookup first (a Threema sender's key), `defer_prefetch`
    returns at once with `needs_prefetch` set, so the async caller awaits the lookup on its
    loop; otherwise (scripts, tests: no loop in this thread) it runs here (#13 finding 6).
    """
    if try_fast:  # status-only deliveries, known route (the web server tried the async variant already)
        fast = status_sink.try_fast_path(ctx, route_key, request)
        if fast is not None:
            return WebhookResult(200, "OK", *fast)
    known = _known_route_events(ctx, route_key, request)
    if known is not None:
        try:
            return _handle_all(ctx, known[0].account_id, known[1], known[0].cfg, expect=known[0])
        except _StaleAccount:
            pass  # the account changed since it was last read: verified again below, against what it is now
    try:
        account, cfg = status_sink.account_for_route(ctx, route_key)
    except NotFound:
        metrics.webhook_rejected("unknown", "unknown_route")
        raise
    adapter = ctx.adapter(account.kind)
    if request.method == "GET":
        challenge = adapter.handshake(cfg, request)
        if challenge is None:
            metrics.webhook_rejected(account.kind, "handshake")
            bump_counter(ctx, f"webhook_rejected:{account.kind}")
            return WebhookResult(403, "Forbidden")
        return WebhookResult(200, challenge)
    try:
        adapter.verify(cfg, request)
    except WebhookRejected as exc:
        metrics.webhook_rejected(account.kind, "signature")
        bump_counter(ctx, f"webhook_rejected:{account.kind}")
        return WebhookResult(exc.status, {401: "Unauthorized", 403: "Forbidden"}.get(exc.status, "Rejected"))
    try:
        try:
            events = adapter.parse(cfg, request.body)
        except NeedsPrefetch:
            if defer_prefetch:
                return WebhookResult(503, "Retry", needs_prefetch=cfg)
            _prefetch_here(adapter, cfg, request)
            events = adapter.parse(cfg, request.body)
        events = [checked_event(ev) for ev in events]
    except Exception as exc:
        if not isinstance(exc, ValueError | KeyError | TypeError):
            log.warning("webhook parse failed kind=%s error=%s", account.kind, type(exc).__name__)
        metrics.webhook_rejected(account.kind, "malformed")
        bump_counter(ctx, f"webhook_malformed:{account.kind}")
        return WebhookResult(400, "malformed payload")
    metrics.webhook_received(account.kind)
    if events and all(isinstance(ev, StatusUpdate) for ev in events):
        # Fast path: statuses of many requests share one durable transaction (CH4, bench/inbound.py).
        stored = status_sink.sink(ctx).submit(
            account.id, account.tenant_id, [ev for ev in events if isinstance(ev, StatusUpdate)]
        )
        assert stored is not None  # nothing to go stale: the account was read just now
        return WebhookResult(200, "OK", *stored)
    return _handle_all(ctx, account.id, events, cfg)


class _StaleAccount(Exception):
    """The account a request was verified against (as last read) is no longer what is stored."""


def _known_route_events(
    ctx: Konsent, route_key: str, request: WebhookRequest
) -> tuple[status_sink.KnownAccount, list[Event]] | None:
    """A delivery with events other than statuses, for a route whose account was read before:
    verified and parsed with the account as last read, without a read transaction first. The
    first event's transaction checks that the account is still active with the same secrets and
    settings (`_StaleAccount` otherwise). Anything unusual (unknown route, a rejected signature, a
    payload that does not parse or needs a prefetch, statuses only) returns None: the ordinary path."""
    known = ctx.known_routes.get(route_key)
    if known is None or request.method != "POST":
        return None
    adapter = ctx.adapter(known.kind)
    try:
        adapter.verify(known.cfg, request)
        events = [checked_event(ev) for ev in adapter.parse(known.cfg, request.body)]
    except Exception:
        return None
    if not events or all(isinstance(ev, StatusUpdate) for ev in events):
        return None  # statuses go through the group commit, after the ordinary checks
    return known, events


def _handle_all(
    ctx: Konsent,
    account_id: int,
    events: list[Event],
    cfg: AccountConfig,
    expect: status_sink.KnownAccount | None = None,
) -> WebhookResult:
    """Each event in its own transaction; counted as handled or duplicate (invariant 6)."""
    handled = dups = 0
    acks: list[InboundMessage] = []
    for i, ev in enumerate(events):
        if handle_event(ctx, account_id, ev, expect=expect if i == 0 else None):
            handled += 1
            if isinstance(ev, InboundMessage) and ev.ack_ref:
                acks.append(ev)
        else:
            dups += 1
        if i == 0 and expect is not None:
            metrics.webhook_received(expect.kind)
    return WebhookResult(200, "OK", handled, dups, tuple(acks), cfg if acks else None)


def _prefetch_here(adapter: ChannelAdapter, cfg: AccountConfig, request: WebhookRequest) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(adapter.prefetch(cfg, request))
        return
    raise ValueError("cannot look up on a running loop")  # never block a loop: 400, the provider retries


async def acknowledge(ctx: Konsent, result: WebhookResult) -> None:
    """After the answer: acknowledge stored events at the provider; a failure is counted, nothing lost."""
    if result.account is None:
        return
    adapter = ctx.adapter(result.account.kind)
    for ev in result.to_acknowledge:
        try:
            await asyncio.wait_for(adapter.acknowledge(result.account, ev), ACK_TIMEOUT_S)
        except Exception as exc:  # the event is committed already; the provider's client times out
            log.warning("acknowledge failed kind=%s error=%s", result.account.kind, type(exc).__name__)
            await asyncio.to_thread(bump_counter, ctx, f"ack_failed:{result.account.kind}")


def _dedupe_key(ev: Event) -> str:
    if isinstance(ev, InboundMessage):
        return f"msg:{ev.provider_id}"
    if isinstance(ev, StatusUpdate):
        return f"st:{ev.provider_id}:{ev.status}"
    if isinstance(ev, StatusWatermark):
        return f"wm:{ev.status}:{ev.provider_id}" if ev.provider_id else ""
    if isinstance(ev, ReachabilityChange):
        return f"reach:{ev.provider_id}" if ev.provider_id else ""
    if isinstance(ev, MarketingPreference):
        return f"pref:{ev.provider_id}" if ev.provider_id else ""
    if isinstance(ev, TemplateUpdate):
        return f"tpl:{ev.provider_id}" if ev.provider_id else ""
    return f"unknown:{ev.kind}:{ev.provider_id}" if ev.provider_id else ""


def handle_event(
    ctx: Konsent, account_id: int, ev: Event, expect: status_sink.KnownAccount | None = None
) -> bool:
    """Apply one event in its own transaction; False when it was a duplicate (invariant 6).

    With `expect` (the account state the request was verified against) the transaction first
    checks that the account still is in that state and raises `_StaleAccount` otherwise."""
    try:
        return _apply_event(ctx, account_id, ev, expect)
    except IntegrityError:
        # Two first messages of one new contact racing to create it. Once more, now that the other
        # transaction has committed: the second message is stored instead of being dropped.
        try:
            return _apply_event(ctx, account_id, ev, expect)
        except IntegrityError:  # stored before under another key (e.g. its dedupe row was purged)
            log.warning("event already stored account=%s kind=%s", account_id, type(ev).__name__)
            return False


def _apply_event(
    ctx: Konsent, account_id: int, ev: Event, expect: status_sink.KnownAccount | None = None
) -> bool:
    with ctx.db.write() as s:
        # the account and its tenant in one statement: the handlers find the tenant in the session
        row = s.execute(
            select(ChannelAccount, Tenant)
            .join(Tenant, Tenant.id == ChannelAccount.tenant_id)
            .where(ChannelAccount.id == account_id)
        ).one_or_none()
        if row is None and expect is not None:
            raise _StaleAccount()  # deleted since it was last read
        assert row is not None
        account = row[0]
        if expect is not None and (
            not account.active
            or account.secrets_sealed != expect.secrets_sealed
            or account.settings != expect.settings
        ):
            raise _StaleAccount()
        key = dedupe.hashed_key(dedupe.dedupe_secret(ctx, s, account.tenant_id), _dedupe_key(ev))
        if key and not dedupe.claim(s, account.tenant_id, account.id, key[:250], type(ev).__name__):
            return False
        if isinstance(ev, InboundMessage):
            on_message(ctx, s, account, ev)
        elif isinstance(ev, StatusUpdate):
            on_status(s, account, ev)
        elif isinstance(ev, StatusWatermark):
            watermarks.apply_watermark(ctx, s, account, ev)
        elif isinstance(ev, ReachabilityChange):
            on_reachability(ctx, s, account, ev)
        elif isinstance(ev, MarketingPreference):
            on_preference(ctx, s, account, ev)
        elif isinstance(ev, TemplateUpdate):
            template_lifecycle.apply_update(s, account, ev)
        elif isinstance(ev, UnknownEvent):
            # stored above as a webhook event; counted so an operator sees what reached no one (CH5)
            log.info("unhandled event kind=%s account=%s", ev.kind, account.id)
            _count(s, f"inbound_unhandled:{account.kind}")
    return True


__all__ = [
    "DomainError",
    "WebhookRequest",
    "WebhookResult",
    "acknowledge",
    "handle_event",
    "receive_webhook",
    "reply",
]
