"""Consent-core flows over Telegram: the fake Bot API calls konsent's real webhook URL (C2, C4, CH1-CH4)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine
from sqlalchemy import func, select

from konsent.channels.telegram import set_webhook
from konsent.flows.consent import optin
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.store.tables import Consent, Contact, Counter, Message, OutboxRow, WebhookEvent
from tests.channels import fixtures_telegram as fx
from tests.conftest import drain
from tests.fakes.telegram_fake import FaultPlan, TelegramFake

CHAT = 424242


@dataclass
class Setup:
    ctx: Konsent
    fake: TelegramFake
    account_id: int
    route_key: str
    base: str


@pytest.fixture
def tg(ctx, demo) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    with TelegramFake(bots=[(fx.BOT_TOKEN, fx.BOT_USERNAME)]) as fake:
        assert isinstance(fake, TelegramFake)
        account_id, route_key = fx.telegram_account(ctx, api_base=fake.url)
        with fx.serve_konsent(ctx) as base:
            with ctx.db.read() as s:
                from konsent.store.tables import ChannelAccount

                acc = s.get(ChannelAccount, account_id)
                assert acc is not None
                cfg = tenants.account_config(ctx, s, acc)
            import asyncio

            # The admin registers the public URL; the fake delivers to the local server instead.
            asyncio.run(set_webhook(cfg, f"https://konsent.example/webhooks/{route_key}"))
            fake.webhook_target = f"{base}/webhooks/{route_key}"
            yield Setup(ctx, fake, account_id, route_key, base)


def widget_link(ctx: Konsent, account_id: int, topics: list[str], locale: str = "de") -> str:
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        pending = optin.request_opt_in(
            ctx,
            s,
            tenant,
            channel_account_id=account_id,
            topic_slugs=topics,
            locale=locale,
            source_url="https://shop.example/",
            ip="203.0.113.9",
            user_agent="pytest",
        )
        return pending.deep_link


def subscribe(tg: Setup, chat: int = CHAT, topics: list[str] | None = None) -> None:
    link = widget_link(tg.ctx, tg.account_id, topics or ["angebote"])
    url = urlparse(link)
    assert (url.netloc, url.path) == ("t.me", f"/{fx.BOT_USERNAME}")
    code = parse_qs(url.query)["start"][0]
    assert code.startswith("KS") and len(code) == 12
    assert tg.fake.user_sends(chat, f"/start {code}", language_code="de") == [200]
    drain(tg.ctx)


def consents(ctx: Konsent) -> dict[str, str]:
    with ctx.db.read() as s:
        return {c.purpose: c.status for c in s.scalars(select(Consent)).all()}


def contact(ctx: Konsent) -> Contact:
    with ctx.db.read() as s:
        return s.scalars(select(Contact)).one()


def test_start_payload_from_widget_link_confirms_and_sends_confirmation(tg):
    """C2: widget code → t.me link → /start KS… update → consent active, confirmation in the chat."""
    subscribe(tg)
    assert consents(tg.ctx) == {"newsletter:angebote": "active"}
    [confirmation] = tg.fake.texts_to(CHAT)
    assert "Angebote" in confirmation and "STOP" in confirmation


def test_stop_withdraws_and_confirms_withdrawal(tg):
    """C4: STOP from Telegram withdraws every topic and says so."""
    subscribe(tg)
    time.sleep(1.0)  # Telegram's 1 message/s per chat, kept by the fake
    assert tg.fake.user_sends(CHAT, "STOP") == [200]
    drain(tg.ctx)
    assert consents(tg.ctx) == {"newsletter:angebote": "withdrawn"}
    assert len(tg.fake.texts_to(CHAT)) == 2


def test_service_reply_reaches_the_chat(tg):
    """CH1: a contact writes, staff answers on purpose `service` without any newsletter consent."""
    from konsent.flows import message_desk

    assert tg.fake.user_sends(CHAT, "/start") == [200]
    assert tg.fake.user_sends(CHAT, "Habt ihr Samstag offen?") == [200]
    with tg.ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        c = s.scalars(select(Contact)).one()
        message_desk.send_message(tg.ctx, s, tenant.id, "staff:1", c.id, "service", "Ja, 9-14 Uhr.")
    drain(tg.ctx)
    assert "Ja, 9-14 Uhr." in tg.fake.texts_to(CHAT)
    with tg.ctx.db.read() as s:
        out = s.scalars(select(Message).where(Message.author == "staff:1")).one()
        assert out.status == "sent" and out.provider_id.startswith(f"{CHAT}:")


def test_send_to_blocked_bot_marks_contact_unreachable(tg):
    """CH3: 403 bot was blocked by the user → contact unreachable, message failed, not retried."""
    tg.fake.user_sends(CHAT, "Hallo")
    tg.fake.started.add(CHAT)
    tg.fake.blocked.add(CHAT)
    with tg.ctx.db.write() as s:
        from konsent.flows import message_desk

        tenant = tenants.tenant_by_slug(s, "demo")
        c = s.scalars(select(Contact)).one()
        message_desk.send_message(tg.ctx, s, tenant.id, "staff:1", c.id, "service", "Antwort")
    drain(tg.ctx)
    assert contact(tg.ctx).unreachable
    with tg.ctx.db.read() as s:
        msg = s.scalars(select(Message).where(Message.author == "staff:1")).one()
        row = s.scalars(select(OutboxRow).where(OutboxRow.message_id == msg.id)).one()
        assert row.state == "discarded" and row.attempt == 1 and msg.status == "failed"


def test_my_chat_member_kicked_marks_contact_unreachable(tg):
    """CH2: the user blocks the bot → unreachable; pressing Start again → reachable."""
    tg.fake.user_sends(CHAT, "Hallo")
    assert tg.fake.user_blocks(CHAT) == [200]
    assert contact(tg.ctx).unreachable
    tg.fake.deliver(tg.fake.member_update(CHAT, "member"))
    assert not contact(tg.ctx).unreachable


def test_blocking_the_bot_withdraws_marketing_in_the_ledger_and_unblocking_grants_nothing(tg):
    """C4, #16 item 6: a Telegram block is a withdrawal with its source; queued newsletters are cancelled
    in the same transaction; pressing Start again makes the chat reachable, never subscribed."""
    from konsent.store.tables import LedgerEntry

    subscribe(tg)
    assert tg.fake.user_blocks(CHAT) == [200]
    assert consents(tg.ctx) == {"newsletter:angebote": "withdrawn"}
    with tg.ctx.db.read() as s:
        entry = s.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert (
            entry is not None and entry.action == "withdrawn" and entry.payload["source"] == "provider_block"
        )
    tg.fake.deliver(tg.fake.member_update(CHAT, "member"))
    assert consents(tg.ctx) == {"newsletter:angebote": "withdrawn"}
    with tg.ctx.db.read() as s:  # the unblock is in the proof as what it is: an event, not a consent
        resume = s.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert resume is not None and resume.payload["source"] == "provider_unblock"
        assert resume.payload["grants_consent"] is False and resume.action != "granted"


def test_flood_429_snoozes_without_spending_an_attempt_then_sends(tg):
    """CH3: 429 → the row waits retry_after seconds, attempt unchanged, then goes out."""
    tg.fake.faults = FaultPlan(rate_limit=1.0, retry_after=1)
    subscribe(tg)
    with tg.ctx.db.read() as s:
        row = s.scalars(select(OutboxRow)).one()
        assert (row.state, row.attempt) == ("available", 0) and row.last_error.startswith("429")
    assert tg.fake.texts_to(CHAT) == []
    tg.fake.faults = FaultPlan()
    drain(tg.ctx)
    assert tg.fake.texts_to(CHAT) == []  # not before retry_after
    with time_machine.travel(timedelta(seconds=1.05), tick=True):
        drain(tg.ctx)
    assert len(tg.fake.texts_to(CHAT)) == 1
    with tg.ctx.db.read() as s:
        row = s.scalars(select(OutboxRow)).one()
        assert (row.state, row.attempt) == ("done", 1)


def test_duplicate_update_id_is_processed_once(tg):
    """Invariant 6: Telegram redelivering the same update_id adds no second message or reply."""
    link = widget_link(tg.ctx, tg.account_id, ["angebote"])
    code = parse_qs(urlparse(link).query)["start"][0]
    tg.fake.started.add(CHAT)
    update = tg.fake.message_update(CHAT, f"/start {code}")
    assert tg.fake.deliver(update) == [200]
    assert tg.fake.deliver(update) == [200]
    drain(tg.ctx)
    with tg.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    assert len(tg.fake.texts_to(CHAT)) == 1


def test_wrong_or_missing_secret_stores_nothing_but_a_counter(tg):
    """CH2: 401/403 and nothing written except the rejection counter."""
    import httpx

    url = f"{tg.base}/webhooks/{tg.route_key}"
    body = tg.fake.message_update(CHAT, "Hallo")
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}).status_code == 403
    with tg.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        counter = s.scalars(select(Counter).where(Counter.name == "webhook_rejected:telegram")).one()
        assert counter.value == 2


def test_malformed_body_is_400_and_unknown_update_is_200(tg):
    """Bad input: malformed JSON → 400; an update kind konsent ignores → 200 so Telegram stops retrying."""
    import httpx

    url = f"{tg.base}/webhooks/{tg.route_key}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": fx.SECRET_TOKEN, "Content-Type": "application/json"}
    assert httpx.post(url, content=b"{not json", headers=headers).status_code == 400
    assert httpx.post(url, content=b'{"update_id": 9, "poll": {}}', headers=headers).status_code == 200
    assert httpx.post(f"{tg.base}/webhooks/nosuchkey", content=b"{}", headers=headers).status_code == 404
    with tg.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def counter(ctx: Konsent, name: str, timeout: float = 5.0) -> int:
    """A counter's value, waiting for it to appear (acknowledgements run after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        with ctx.db.read() as s:
            row = s.get(Counter, name)
        if row is not None or time.monotonic() > deadline:
            return row.value if row is not None else 0
        time.sleep(0.02)


def inbound_buttons(ctx: Konsent) -> int:
    with ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))


def test_button_press_is_stored_then_answered_once(tg):
    """CH2: callback_query → stored, then answerCallbackQuery with its id (the spinner stops);
    Telegram redelivering the same update is neither stored nor answered again (invariant 6)."""
    tg.fake.started.add(CHAT)
    update = tg.fake.callback_update(CHAT, "termin_ja", "Ja, passt")
    assert tg.fake.deliver(update) == [200]
    [answer] = tg.fake.wait_answered(1)
    assert answer["callback_query_id"] == update["callback_query"]["id"] and answer["chat_id"] == CHAT
    assert inbound_buttons(tg.ctx) == 1
    assert tg.fake.deliver(update) == [200]
    time.sleep(0.3)
    assert len(tg.fake.answered) == 1 and inbound_buttons(tg.ctx) == 1
    assert counter(tg.ctx, "ack_failed:telegram", timeout=0) == 0


def test_failed_answer_keeps_the_press_and_is_counted(tg):
    """Bad luck at Telegram (502 on answerCallbackQuery) loses nothing: 200, press stored, a counter."""
    tg.fake.faults = FaultPlan(server_error=1.0)
    assert tg.fake.user_presses(CHAT, "termin_ja", "Ja") == [200]
    assert counter(tg.ctx, "ack_failed:telegram") == 1
    assert inbound_buttons(tg.ctx) == 1 and tg.fake.answered == []
    with tg.ctx.db.read() as s:
        stored = s.scalars(select(WebhookEvent)).one()
        assert stored.kind == "InboundMessage"
