# ruff: noqa: F811
"""A template's CURRENT category decides at claim time (T4, C5, invariant 1), and MARKETING templates
go through WhatsApp's Marketing Messages API where the account is enabled for it (#16 item 3).
131049 (per-user marketing limit) is never retried and blames nobody (#16 item 5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendResult,
)
from konsent.channels.meta import map_graph_error
from konsent.channels.whatsapp import WhatsAppCloudChannel
from konsent.domain.events import TemplateUpdate
from konsent.domain.purposes import Purpose
from konsent.flows.consent.grants import grant_consent
from konsent.flows.contacts import get_or_create_contact
from konsent.flows.context import Konsent
from konsent.flows.outbound import template_lifecycle
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.outbound.template_gate import RECATEGORISED
from konsent.store.tables import ChannelAccount, Consent, Contact, Message, MessageTemplate, OutboxRow
from konsent.store.types import utcnow
from tests.broadcast.seed import add_account
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain
from tests.costs.support import PricedChannel, priced_account, template

TEMPLATE = OutboundContent(template="rueckfrage", template_language="de")


def _contact(ctx: Konsent, account_id: int, address: str, *, subscribed: bool) -> int:
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        contact, ident, _ = get_or_create_contact(ctx, s, acc, address)
        contact.has_contacted_us = True  # a service conversation: no marketing consent by itself
        ident.last_inbound_at = utcnow()
        if subscribed:
            grant_consent(
                s, contact, Purpose.newsletter("angebote"), text_version=1, evidence={"source": "test"},
                channel_account_id=acc.id, at=utcnow(),
            )  # fmt: skip
        return contact.id


def _queue(ctx: Konsent, contact_id: int, purpose: str, content: OutboundContent = TEMPLATE) -> int:
    with ctx.db.write() as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None
        return enqueue_message(ctx, s, contact, purpose, content).id


def _recategorise(ctx: Konsent, account_id: int, new: str) -> None:
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        ev = TemplateUpdate("rueckfrage", "de", "category", new, utcnow(), old="UTILITY", provider_id="cat-1")
        template_lifecycle.apply_update(s, acc, ev)


def _message(ctx: Konsent, mid: int) -> tuple[str, str]:
    with ctx.db.read() as s:
        msg = s.get(Message, mid)
        assert msg is not None
        return msg.status, msg.status_reason


def test_a_template_recategorised_to_marketing_after_queueing_is_refused_at_claim_time(
    ctx: Konsent, demo
) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "rueckfrage", "UTILITY")
    cid = _contact(ctx, acc, "+4915110000001", subscribed=False)
    mid = _queue(ctx, cid, "service")  # allowed when queued: a UTILITY template in a service conversation
    _recategorise(ctx, acc, "MARKETING")
    drain(ctx)
    assert PricedChannel.sent == []
    assert _message(ctx, mid) == ("refused", RECATEGORISED)
    with ctx.db.read() as s:
        assert s.scalars(select(OutboxRow.state).where(OutboxRow.message_id == mid)).one() == "refused"


def test_the_recategorised_template_still_goes_to_a_subscriber_for_their_newsletter(
    ctx: Konsent, demo
) -> None:
    acc = priced_account(ctx, demo.tenant_id)
    template(ctx, demo.tenant_id, acc, "rueckfrage", "UTILITY")
    cid = _contact(ctx, acc, "+4915110000002", subscribed=True)
    mid = _queue(ctx, cid, "newsletter:angebote")
    _recategorise(ctx, acc, "MARKETING")
    drain(ctx)
    assert [(a, c.template, c.template_category) for a, c in PricedChannel.sent] == [
        ("+4915110000002", "rueckfrage", "MARKETING")]  # fmt: skip
    assert _message(ctx, mid)[0] == "sent"


def _whatsapp_conn(ctx: Konsent, fake: Any, marketing_messages: str) -> fx.Connected:
    conn = fx.connect(ctx, "whatsapp", fake)
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, conn.account_id)
        assert acc is not None
        acc.settings = {**acc.settings, "marketing_messages": marketing_messages}
    fake.phones[fx.WA_PHONE_ID].marketing_messages = True
    return conn


def _whatsapp(ctx: Konsent, fake: Any, marketing_messages: str) -> int:
    return _whatsapp_conn(ctx, fake, marketing_messages).account_id


def test_meta_recategorising_a_template_reroutes_it_and_refuses_it_for_service(
    ctx: Konsent, client, fake
) -> None:
    """End to end against the fake: Meta's category and quality webhooks reach the registry; the next
    claim refuses the service message and sends the newsletter through /marketing_messages."""
    conn = _whatsapp_conn(ctx, fake, "yes")
    template(ctx, conn.tenant_id, conn.account_id, "rueckfrage", "UTILITY")
    svc = _queue(ctx, _contact(ctx, conn.account_id, "+4915112345601", subscribed=False), "service")
    news = _queue(
        ctx, _contact(ctx, conn.account_id, "+4915112345602", subscribed=True), "newsletter:angebote"
    )
    fake.template_recategorised(fx.WA_PHONE_ID, "rueckfrage", "de", "UTILITY", "MARKETING")
    fake.template_quality(fx.WA_PHONE_ID, "rueckfrage", "de", "GREEN", "YELLOW")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200, 200]
    drain(ctx)
    assert [(a["body"]["to"], a["endpoint"]) for a in fake.accepted] == [
        ("+4915112345602", "marketing_messages")
    ]
    assert _message(ctx, svc) == ("refused", RECATEGORISED)
    assert _message(ctx, news)[0] == "sent"
    with ctx.db.read() as s:
        row = s.scalars(select(MessageTemplate).where(MessageTemplate.name == "rueckfrage")).one()
        assert (row.category, row.quality) == ("MARKETING", "YELLOW")


def test_marketing_templates_go_to_marketing_messages_where_the_account_is_enabled(
    ctx: Konsent, fake
) -> None:
    acc = _whatsapp(ctx, fake, "yes")
    with ctx.db.read() as s:
        tenant = s.get(ChannelAccount, acc).tenant_id  # type: ignore[union-attr]
    template(ctx, tenant, acc, "rueckfrage", "MARKETING")
    template(ctx, tenant, acc, "versand", "UTILITY")
    cid = _contact(ctx, acc, "+4915112345678", subscribed=True)
    _queue(ctx, cid, "newsletter:angebote")
    _queue(ctx, cid, "service", OutboundContent(template="versand", template_language="de"))
    drain(ctx)
    assert [(a["body"]["template"]["name"], a["endpoint"]) for a in fake.accepted] == [
        ("rueckfrage", "marketing_messages"), ("versand", "messages")]  # fmt: skip


def test_without_the_account_setting_marketing_templates_use_messages(ctx: Konsent, fake) -> None:
    acc = _whatsapp(ctx, fake, "no")
    with ctx.db.read() as s:
        tenant = s.get(ChannelAccount, acc).tenant_id  # type: ignore[union-attr]
    template(ctx, tenant, acc, "rueckfrage", "MARKETING")
    cid = _contact(ctx, acc, "+4915112345678", subscribed=True)
    _queue(ctx, cid, "newsletter:angebote")
    drain(ctx)
    assert [a["endpoint"] for a in fake.accepted] == ["messages"]


def test_the_fake_marketing_messages_endpoint_takes_templates_only_from_enabled_numbers(fake) -> None:
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET, display=fx.WA_DISPLAY)
    account = fx.account_config("whatsapp", fake, marketing_messages="yes")
    marketing = OutboundContent(template="rueckfrage", template_language="de", template_category="MARKETING")
    refused = fx.run_send(WhatsAppCloudChannel(), account, "+4915112345678", marketing)
    assert (refused.outcome.value, refused.error_code) == ("permanent", "131063")  # not onboarded
    fake.phones[fx.WA_PHONE_ID].marketing_messages = True
    sent = fx.run_send(WhatsAppCloudChannel(), account, "+4915112345678", marketing)
    assert sent.outcome.value == "sent"
    assert fake.accepted[-1]["endpoint"] == "marketing_messages"


class _MarketingLimited(ChannelAdapter):
    """Answers every send as Meta does when its per-user marketing limit holds the message back."""

    kind = "test_131049"
    label = "131049"
    capabilities = Capabilities(throughput_per_s=10_000)
    attempts = 0

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        type(self).attempts += 1
        text = "This message was not delivered to maintain healthy ecosystem engagement."
        body = {"error": {"code": 131049, "message": text, "is_transient": True}}
        return map_graph_error(400, body, {})


def test_131049_is_not_retried_and_the_contact_stays_reachable_and_subscribed(ctx: Konsent, demo) -> None:
    from konsent.channels import register

    register(_MarketingLimited)
    acc = add_account(ctx, demo.tenant_id, "test_131049")
    cid = _contact(ctx, acc, "+4915110000003", subscribed=True)
    mid = _queue(ctx, cid, "newsletter:angebote", OutboundContent(text="Angebot"))
    for _ in range(3):
        drain(ctx)
    assert _MarketingLimited.attempts == 1
    status, reason = _message(ctx, mid)
    assert status == "failed" and reason.startswith("131049")
    with ctx.db.read() as s:
        contact = s.get(Contact, cid)
        assert contact is not None and not contact.unreachable
        assert s.scalars(select(Consent.status).where(Consent.contact_id == cid)).one() == "active"
