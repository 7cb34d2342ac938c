"""The inbound path: verify, parse, store once, then keywords → opt-in code → inbox (CH2, C4)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from konsent import metrics
from konsent.channels.base import (
    AccountConfig,
    ChannelAdapter,
    NeedsPrefetch,
    OutboundContent,
    WebhookRejected,
    WebhookRequest,
)
from konsent.domain import optin as codes
from konsent.domain import received
from konsent.domain.errors import DomainError, NotFound, WindowClosed
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
from konsent.domain.keywords import Intent, match_keyword
from konsent.domain.purposes import SERVICE
from konsent.flows import texts
from konsent.flows.consent import grants as consent_flow
from konsent.flows.consent.optin import ConfirmOutcome, confirm_opt_in
from konsent.flows.contacts import find_identity, get_or_create_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbound import dedupe, status_sink, watermarks
from konsent.flows.inbox import bot, csat
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import channel_health
from konsent.flows.organisation.tenants import topics
from konsent.flows.outbound import reconsent, template_lifecycle
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.webhooks.events import emit, emit_status
from konsent.i18n import pick_locale, t
from konsent.store.tables import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    Counter,
    EarlyStatus,
    Message,
    Tenant,
    WebhookEvent,
)

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0
_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


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
    handled = dups = 0
    acks: list[InboundMessage] = []
    for ev in events:
        if handle_event(ctx, account.id, ev):
            handled += 1
            if isinstance(ev, InboundMessage) and ev.ack_ref:
                acks.append(ev)
        else:
            dups += 1
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


def handle_event(ctx: Konsent, account_id: int, ev: Event) -> bool:
    """Apply one event in its own transaction; False when it was a duplicate (invariant 6)."""
    try:
        return _apply_event(ctx, account_id, ev)
    except IntegrityError:
        # Either the same event arriving twice at once, or two first messages of one new contact
        # racing to create it. Once more, now that the other transaction has committed: a duplicate
        # is then recognised as such, a second message is stored instead of being dropped.
        try:
            return _apply_event(ctx, account_id, ev)
        except IntegrityError:  # stored before under another key (e.g. its dedupe row was purged)
            log.warning("event already stored account=%s kind=%s", account_id, type(ev).__name__)
            return False


def _apply_event(ctx: Konsent, account_id: int, ev: Event) -> bool:
    with ctx.db.write() as s:
        account = s.get(ChannelAccount, account_id)
        assert account is not None
        key = dedupe.hashed_key(dedupe.dedupe_secret(ctx, s, account.tenant_id), _dedupe_key(ev))
        if key:
            seen = s.scalars(
                select(WebhookEvent.id).where(
                    WebhookEvent.channel_account_id == account.id, WebhookEvent.dedupe_key == key[:250]
                )
            ).first()
            if seen is not None:
                return False
            s.add(
                WebhookEvent(
                    tenant_id=account.tenant_id,
                    channel_account_id=account.id,
                    dedupe_key=key[:250],
                    kind=type(ev).__name__,
                )
            )
            s.flush()
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


def _conversation(s: Session, contact: Contact, account: ChannelAccount, at: datetime) -> Conversation:
    conv = s.scalars(
        select(Conversation)
        .where(
            Conversation.tenant_id == contact.tenant_id,
            Conversation.contact_id == contact.id,
            Conversation.channel_account_id == account.id,
            Conversation.state != "closed",
        )
        .order_by(Conversation.id.desc())
    ).first()
    if conv is None:
        conv = Conversation(
            tenant_id=contact.tenant_id,
            contact_id=contact.id,
            channel_account_id=account.id,
            state="open",
            started_at=at,
            last_message_at=at,
        )
        s.add(conv)
        s.flush()
    conv.last_message_at = at
    return conv


def reply(
    ctx: Konsent,
    s: Session,
    contact: Contact,
    account: ChannelAccount,
    conv: Conversation,
    text: str,
) -> Message | None:
    """An automatic service answer in the contact's conversation (purpose `service`).

    None when the channel's service window has closed already (a provider retry that
    arrives days late): the event itself still counts, only the answer is not sent.
    """
    try:
        return enqueue_message(
            ctx,
            s,
            contact,
            SERVICE,
            OutboundContent(text=text),
            channel_account_id=account.id,
            conversation_id=conv.id,
            author="system",
        )
    except WindowClosed:
        log.info("no automatic reply: service window closed account=%s", account.id)
        return None


def on_message(ctx: Konsent, s: Session, account: ChannelAccount, ev: InboundMessage) -> None:
    tenant = s.get(Tenant, account.tenant_id)
    assert tenant is not None
    contact, ident, _ = get_or_create_contact(
        ctx,
        s,
        account,
        ev.address,
        user_id=ev.user_id,
        name=ev.profile_name,
        locale=pick_locale(ev.locale, "") or None,
    )
    contact.has_contacted_us = True
    contact.unreachable = False
    contact.last_activity_at = ev.at
    if ev.kind not in received.REACTIONS:  # a reaction or a deletion opens no messaging window
        ident.last_inbound_at = max(ident.last_inbound_at or ev.at, ev.at)
    channel_health.note_inbound(s, account.id, ev.at)
    conv = _conversation(s, contact, account, ev.at)
    stored = Message(
        tenant_id=account.tenant_id,
        conversation_id=conv.id,
        contact_id=contact.id,
        channel_account_id=account.id,
        direction="in",
        body_sealed=seal_for_contact(ctx, s, contact, "message", json.dumps(_stored_body(ev))),
        provider_id=ev.provider_id,
        status="received",
        created_at=ev.at,
        updated_at=ev.at,
    )
    s.add(stored)
    s.flush()
    emit(
        s,
        account.tenant_id,
        "message.received",
        {
            "contact_id": contact.id,
            "conversation_id": conv.id,
            "message_id": stored.id,
            "channel_account_id": account.id,
            "direction": "in",
            "kind": ev.kind,
        },
        at=ev.at,
    )
    rating = csat.record(s, contact, ev.payload, ev.at) if ev.kind == "button" else None
    if rating is not None:  # a satisfaction answer: counted once, thanked once, never a keyword or bot step
        if rating == "rated":
            reply(ctx, s, contact, account, conv, t(contact.locale or tenant.default_locale, csat.THANKS))
        return
    if ev.kind not in received.CONVERSATIONAL:
        # a location, a card, a reaction, an order, an edit ...: for staff, never for keywords or the bot
        inbox.on_contact_message(s, conv)
        return
    locale = contact.locale or tenant.default_locale
    topic_list = topics(s, tenant.id)
    names = {tp.slug: tp.names.values() for tp in topic_list}
    match = match_keyword(ev.text, names, tenant.settings.get("keywords"))
    if match is not None and match.intent is Intent.WITHDRAW:
        purposes = [f"newsletter:{match.topic}"] if match.topic else None
        done = consent_flow.withdraw(s, contact, purposes, source="keyword", at=ev.at, channel=account.kind)
        if done:
            titles = _titles(topic_list, [p.split(":", 1)[1] for p in done], locale)
            reply(
                ctx,
                s,
                contact,
                account,
                conv,
                t(
                    locale,
                    texts.WITHDRAWN,
                    topics=titles,
                ),
            )
        else:
            reply(
                ctx,
                s,
                contact,
                account,
                conv,
                t(locale, texts.NOTHING_TO_WITHDRAW),
            )
        conv.state = "closed" if conv.state == "open" and not done else conv.state
        return
    # Data-subject keywords: DATEN / LÖSCHEN (+ confirmation) / INFO (D1, D2, T3).
    from konsent.flows.privacy import selfservice as privacy_selfservice

    answer = privacy_selfservice.on_keyword(ctx, s, contact, match, ev.text, ev.at)
    if answer is not None:
        if answer:
            reply(ctx, s, contact, account, conv, answer)
        return
    code = ev.optin_code or codes.find_code(ev.text)
    if code:
        again = reconsent.confirm(ctx, s, account, contact, code, ev.at)  # re-consent code (C6)?
        if again is not None:
            reply(ctx, s, contact, account, conv, again.reply)
            return
        result = confirm_opt_in(ctx, s, account, contact, code, ev.at)
        locale = contact.locale or result.locale or locale
        if result.outcome is ConfirmOutcome.CONFIRMED:
            titles = _titles(topic_list, list(result.topics), locale)
            reply(
                ctx,
                s,
                contact,
                account,
                conv,
                t(
                    locale,
                    texts.CONFIRMED,
                    topics=titles,
                ),
            )
        elif result.outcome is ConfirmOutcome.USED:
            reply(
                ctx,
                s,
                contact,
                account,
                conv,
                t(locale, texts.CODE_USED),
            )
        elif result.outcome is ConfirmOutcome.EXPIRED:
            reply(
                ctx,
                s,
                contact,
                account,
                conv,
                t(locale, texts.CODE_EXPIRED),
            )
        else:
            reply(
                ctx,
                s,
                contact,
                account,
                conv,
                t(
                    locale,
                    texts.CODE_UNKNOWN,
                ),
            )
        return
    # Otherwise this is a service conversation: the bot may answer, then it stays in the inbox for staff.
    bot.on_inbound(ctx, s, account, contact, conv, ev)


def _stored_body(ev: InboundMessage) -> dict[str, object]:
    """What is sealed for an inbound message: its text and everything else it carried (CH5)."""
    body: dict[str, object] = {"text": ev.text, "payload": ev.payload, "kind": ev.kind}
    body["media_ref"] = ev.media_ref
    if ev.details:
        body["details"] = [list(pair) for pair in ev.details]
    if ev.ref_id:
        body["ref"] = ev.ref_id
    return body


def _titles(topic_list: list, slugs: list[str], locale: str) -> str:
    by_slug = {tp.slug: tp for tp in topic_list}
    out = []
    for slug in slugs:
        tp = by_slug.get(slug)
        out.append((tp.names.get(locale) or tp.names.get("de") or slug) if tp else slug)
    return ", ".join(out)


def on_status(s: Session, account: ChannelAccount, ev: StatusUpdate) -> None:
    """Move a sent message forward; a late 'delivered' never undoes 'read' (CH4).

    The row is locked: providers post a message's statuses concurrently and out of
    order, and two webhooks must not both decide from the same old status.
    """
    msg = s.scalars(
        select(Message)
        .where(
            Message.channel_account_id == account.id,
            Message.direction == "out",
            Message.provider_id == ev.provider_id,
        )
        .with_for_update()
    ).one_or_none()
    if msg is None and ev.ref:  # an echo of a send whose outcome a crash left unknown (#14)
        reason = f"{ev.error_code or ''} {ev.error_title or ''}".strip()[:300]
        s.add(
            EarlyStatus(
                tenant_id=account.tenant_id, channel_account_id=account.id, provider_id=ev.provider_id[:200],
                status=ev.status[:16], reason=reason, at=ev.at, ref=ev.ref[:64],
            )
        )  # fmt: skip
        return
    if msg is None or msg.tenant_id != account.tenant_id:
        return
    before = msg.status
    if ev.status == "failed":
        if msg.status not in ("delivered", "read"):
            msg.status = "failed"
            msg.status_reason = f"{ev.error_code or ''} {ev.error_title or ''}".strip()[:300]
    elif _STATUS_RANK.get(ev.status, -1) > _STATUS_RANK.get(msg.status, -1):
        msg.status = ev.status
    msg.updated_at = max(msg.updated_at, ev.at)
    if msg.status != before:
        emit_status(s, msg.tenant_id, msg.id, msg.status, msg.status_reason)


def _identity_contact(
    ctx: Konsent, s: Session, account: ChannelAccount, address: str, user_id: str | None = None
) -> Contact | None:
    ident: ContactIdentity | None = find_identity(ctx, s, account, address, user_id)
    return s.get(Contact, ident.contact_id) if ident else None


def on_reachability(ctx: Konsent, s: Session, account: ChannelAccount, ev: ReachabilityChange) -> None:
    """A block on the platform is a withdrawal of marketing, recorded with its source; an unblock
    makes the contact reachable again and grants nothing (C4)."""
    contact = _identity_contact(ctx, s, account, ev.address)
    if contact is not None:
        contact.unreachable = not ev.reachable
        if ev.blocked:
            consent_flow.withdraw(s, contact, None, source="provider_block", at=ev.at, channel=account.kind)


def on_preference(ctx: Konsent, s: Session, account: ChannelAccount, ev: MarketingPreference) -> None:
    """WhatsApp marketing stop: withdraw every marketing purpose; resume grants nothing by itself."""
    contact = _identity_contact(ctx, s, account, ev.address, ev.user_id)
    if contact is not None and ev.stop:
        consent_flow.withdraw(s, contact, None, source="provider_preference", at=ev.at, channel=account.kind)


__all__ = [
    "DomainError",
    "WebhookRequest",
    "WebhookResult",
    "acknowledge",
    "handle_event",
    "receive_webhook",
    "reply",
]
