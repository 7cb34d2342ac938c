"""A customer's message, once stored: the contact, the conversation, the sealed text, then keywords
(STOP and the topics' words), data-subject keywords, opt-in and re-consent codes, satisfaction
answers, and otherwise the bot and the inbox (CH2, C4, D1).

Owns `on_message` and `reply` (an automatic service answer through the legal-basis check);
`receive` calls it inside the event's transaction, after the event was recorded once.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain import optin as codes
from konsent.domain import received
from konsent.domain.errors import WindowClosed
from konsent.domain.events import InboundMessage
from konsent.domain.keywords import Intent, match_keyword
from konsent.domain.purposes import SERVICE
from konsent.flows import texts
from konsent.flows.consent import grants as consent_flow
from konsent.flows.consent.optin import ConfirmOutcome, confirm_opt_in
from konsent.flows.contacts import get_or_create_contact, seal_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbox import bot, csat
from konsent.flows.inbox import listing as inbox
from konsent.flows.organisation import channel_health
from konsent.flows.organisation.tenants import topics
from konsent.flows.outbound import reconsent
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.webhooks.events import emit
from konsent.i18n import pick_locale, t
from konsent.store.tables import (
    ChannelAccount,
    Contact,
    Conversation,
    Message,
    Tenant,
)

log = logging.getLogger(__name__)


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
        contacted_at=ev.at,
        window_at=None if ev.kind in received.REACTIONS else ev.at,
    )
    contact.has_contacted_us = True
    contact.unreachable = False
    contact.last_activity_at = ev.at
    if ev.kind not in received.REACTIONS:  # a reaction or a deletion opens no messaging window
        ident.last_inbound_at = max(ident.last_inbound_at or ev.at, ev.at)
    channel_health.note_inbound(s, account.id, ev.at, known=account.last_inbound_at)
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
