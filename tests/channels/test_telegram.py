"""Telegram adapter: secret token, Update parsing, sendMessage error mapping against the fake (CH1-CH4)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator

import pytest

from konsent.channels.base import (
    AccountConfig,
    Button,
    OutboundContent,
    SendOutcome,
    WebhookRejected,
    WebhookRequest,
)
from konsent.channels.telegram import TelegramApiError, TelegramChannel, map_error, set_webhook
from konsent.domain.errors import InvalidInput
from konsent.domain.events import InboundMessage, ReachabilityChange, UnknownEvent
from tests.channels import fixtures_telegram as fx
from tests.fakes.telegram_fake import FaultPlan, TelegramFake

CHAT = 5273618487


@pytest.fixture
def fake() -> Iterator[TelegramFake]:
    with TelegramFake(bots=[(fx.BOT_TOKEN, fx.BOT_USERNAME)]) as f:
        assert isinstance(f, TelegramFake)
        f.started.add(CHAT)
        yield f


def account(api_base: str = "http://127.0.0.1:9", **secrets: str) -> AccountConfig:
    return AccountConfig(
        id=1,
        kind="telegram",
        settings={"bot_username": fx.BOT_USERNAME, "api_base": api_base},
        secrets={"bot_token": fx.BOT_TOKEN, "secret_token": fx.SECRET_TOKEN, **secrets},
    )


def request(headers: dict[str, str], body: bytes = b"{}") -> WebhookRequest:
    return WebhookRequest("POST", headers, {}, body)


def send(fake: TelegramFake, content: OutboundContent, address: str = str(CHAT), timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        ch = TelegramChannel(timeout_s=timeout_s)
        try:
            return await ch.send(account(fake.url), address, content)
        finally:
            await ch.close()

    return asyncio.run(go())


# --- verify ---------------------------------------------------------------------------------------


def test_secret_token_header_must_match_exactly():
    """CH2: only Telegram, which knows the secret registered with setWebhook, gets in."""
    ch = TelegramChannel()
    ch.verify(account(), request({"x-telegram-bot-api-secret-token": fx.SECRET_TOKEN}))
    with pytest.raises(WebhookRejected) as missing:
        ch.verify(account(), request({}))
    assert missing.value.status == 401
    with pytest.raises(WebhookRejected) as wrong:
        ch.verify(account(), request({"x-telegram-bot-api-secret-token": fx.SECRET_TOKEN + "x"}))
    assert wrong.value.status == 403


def test_account_without_secret_rejects_everything():
    """CH2: rejecting is the default; an empty configured secret never matches an empty header."""
    ch = TelegramChannel()
    acc = AccountConfig(1, "telegram", {}, {"bot_token": fx.BOT_TOKEN})
    with pytest.raises(WebhookRejected):
        ch.verify(acc, request({"x-telegram-bot-api-secret-token": ""}))


# --- parse ----------------------------------------------------------------------------------------


def parse(update: dict) -> list:  # type: ignore[type-arg]
    return TelegramChannel().parse(account(), json.dumps(update).encode())


def test_text_message_becomes_inbound_message_keyed_by_update_id():
    """CH2: address is the chat id, idempotency key the update_id, name and language from the user."""
    update = copy.deepcopy(fx.TEXT_UPDATE)
    update["message"]["text"] = "Hallo, wann habt ihr offen?"
    [ev] = parse(update)
    assert isinstance(ev, InboundMessage)
    assert (ev.provider_id, ev.address, ev.kind) == ("11992905", "5273618487", "text")
    assert ev.profile_name == "Kuma Tea" and ev.locale == "en"
    assert ev.text == "Hallo, wann habt ihr offen?" and ev.optin_code is None


def test_start_with_payload_carries_the_optin_code():
    """C2: /start <payload> delivers the opt-in code out of band; the text stays."""
    [ev] = parse(fx.START_UPDATE)
    assert ev.kind == "start" and ev.optin_code == "airplane" and ev.text == "/start airplane"
    update = copy.deepcopy(fx.START_UPDATE)
    update["message"]["text"] = "/start@konsent_demo_bot KS0123456789"
    [ev] = parse(update)
    assert ev.optin_code == "KS0123456789"


@pytest.mark.parametrize("text", ["/start", "/start " + "a" * 65, "/start a+b", "/startx KS0123456789"])
def test_start_without_valid_payload_has_no_code(text):
    """C2: anything but 1-64 chars of A-Za-z0-9_- is not a deep-link payload."""
    update = copy.deepcopy(fx.START_UPDATE)
    update["message"]["text"] = text
    [ev] = parse(update)
    assert isinstance(ev, InboundMessage) and ev.optin_code is None


def test_callback_query_is_a_button_reply_with_its_title():
    """CH2: a pressed inline button → kind button, payload = callback data."""
    [ev] = parse(fx.CALLBACK_UPDATE)
    assert (ev.kind, ev.payload, ev.text, ev.address) == ("button", "yes", "Yes", "1111111")
    assert ev.ack_ref == "4382bfdwdsb323b2d9"  # answered with answerCallbackQuery once stored
    [inline] = parse(fx.CALLBACK_INLINE_UPDATE)
    assert inline.kind == "button" and inline.payload == "Data from button callback"


def test_kicked_and_member_change_reachability():
    """CH2: my_chat_member kicked = the user blocked the bot; member = unblocked."""
    [blocked] = parse(fx.BLOCKED_UPDATE)
    assert isinstance(blocked, ReachabilityChange) and not blocked.reachable and blocked.address == "1111111"
    update = copy.deepcopy(fx.BLOCKED_UPDATE)
    update["my_chat_member"]["new_chat_member"]["status"] = "member"
    [back] = parse(update)
    assert isinstance(back, ReachabilityChange) and back.reachable


def test_group_messages_and_unknown_updates_are_unknown_events():
    """CH2: stored and ignored, so Telegram does not retry forever."""
    group = copy.deepcopy(fx.TEXT_UPDATE)
    group["message"]["chat"]["type"] = "group"
    assert isinstance(parse(group)[0], UnknownEvent)
    [poll] = parse({"update_id": 5, "poll": {"id": "1"}})
    assert isinstance(poll, UnknownEvent) and poll.kind == "poll" and poll.provider_id == "5"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"update_id": "1"}',
        b'{"update_id": true}',
        b'{"update_id": 1, "message": []}',
        b'{"update_id": 1, "message": {"chat": {"id": "x", "type": "private"}}}',
        b'{"update_id": 1, "message": {"chat": {"id": 1, "type": "private"}, "date": 99999999999999}}',
        b"[" * 100_000,
        b"\xff\xfe",
    ],
)
def test_malformed_updates_raise_value_error(body):
    """Bad input: a clear 400 from the flow, never a crash."""
    with pytest.raises(ValueError):
        TelegramChannel().parse(account(), body)


# --- deep link, setup -----------------------------------------------------------------------------


def test_deep_link_is_t_me_with_start_payload():
    """C2: https://t.me/<bot>?start=<code>."""
    ch = TelegramChannel()
    assert (
        ch.deep_link(account(), "KS0123456789", "ignored")
        == f"https://t.me/{fx.BOT_USERNAME}?start=KS0123456789"
    )
    with pytest.raises(ValueError):
        ch.deep_link(account(), "KS 01", "")
    with pytest.raises(InvalidInput):
        ch.deep_link(AccountConfig(1, "telegram", {}, {}), "KS0123456789", "")


def test_set_webhook_registers_secret_and_my_chat_member(fake):
    """CH2: setWebhook carries secret_token and allowed_updates including my_chat_member."""
    asyncio.run(set_webhook(account(fake.url), "https://konsent.example/webhooks/abc"))
    bot = fake.bots[fx.BOT_TOKEN]
    assert bot.secret_token == fx.SECRET_TOKEN and "my_chat_member" in bot.allowed_updates
    with pytest.raises(InvalidInput):
        asyncio.run(set_webhook(account(fake.url, secret_token="bad token!"), "https://x.example/"))
    with pytest.raises(TelegramApiError):
        asyncio.run(set_webhook(account(fake.url), "http://not-https.example/"))


def test_fake_set_webhook_checks_token_and_parameters_like_the_bot_api(fake):
    """The fake refuses what Telegram refuses: wrong token, no url, http, odd port, bad secret or
    allowed_updates; getWebhookInfo shows what was registered, never the secret."""
    import httpx

    api = f"{fake.url}/bot{fx.BOT_TOKEN}"
    wrong = f"{fake.url}/bot{fx.BOT_TOKEN[:-3]}xyz/setWebhook"
    assert httpx.post(wrong, json={"url": "https://k.example/w"}).json()["error_code"] == 401
    for body, fragment in (
        ({}, '"url" is required'),
        ({"url": "http://k.example/w"}, "HTTPS URL must be provided"),
        ({"url": "https://k.example:8080/w"}, "ports 80, 88, 443 or 8443"),
        ({"url": "https://k.example/w", "secret_token": "a" * 257}, "unallowed characters"),
        ({"url": "https://k.example/w", "allowed_updates": "message"}, "can't parse allowed updates"),
    ):
        r = httpx.post(f"{api}/setWebhook", json=body)
        assert r.status_code == 400 and fragment in r.json()["description"], body
    ok = {"url": "https://k.example:8443/w", "secret_token": "s_-1", "allowed_updates": ["message"]}
    assert httpx.post(f"{api}/setWebhook", json=ok).json() == {
        "ok": True, "result": True, "description": "Webhook was set"}  # fmt: skip
    info = httpx.get(f"{api}/getWebhookInfo").json()["result"]
    assert info["url"] == ok["url"] and info["allowed_updates"] == ["message"] and "s_-1" not in str(info)


# --- send -----------------------------------------------------------------------------------------


def test_send_text_with_buttons_returns_chat_and_message_id(fake):
    """CH3: sendMessage with an inline keyboard; provider id chat_id:message_id."""
    result = send(fake, OutboundContent(text="Hallo", buttons=(Button("yes", "Ja"), Button("no", "Nein"))))
    assert result.outcome is SendOutcome.SENT and result.provider_id == f"{CHAT}:1"
    [sent] = fake.sent
    assert sent.text == "Hallo" and [b["callback_data"] for b in sent.buttons] == ["yes", "no"]


def test_blocked_chat_is_unreachable(fake):
    """CH3: 403 bot was blocked by the user → contact unreachable."""
    fake.blocked.add(CHAT)
    result = send(fake, OutboundContent(text="Hallo"))
    assert result.outcome is SendOutcome.UNREACHABLE and "blocked" in result.error_text


def test_flood_limit_returns_retry_after(fake):
    """CH3: 429 → snooze for parameters.retry_after."""
    fake.faults = FaultPlan(rate_limit=1.0, retry_after=7)
    result = send(fake, OutboundContent(text="Hallo"))
    assert result.outcome is SendOutcome.RETRY_AFTER and result.retry_after_s == 7


def test_per_chat_flood_control_of_the_fake_answers_429(fake):
    """The fake keeps Telegram's per-chat flood limit (after a short burst)."""
    fake.chat_rate, fake.chat_burst = 0.1, 2  # slow refill: the test does not depend on machine speed
    outcomes = [send(fake, OutboundContent(text=f"m{i}")).outcome for i in range(5)]
    assert SendOutcome.RETRY_AFTER in outcomes and outcomes[0] is SendOutcome.SENT


def test_server_errors_and_resets_are_transient_timeouts_unknown(fake):
    """CH3: 5xx and network failures retry; an unanswered request may have been delivered."""
    fake.faults = FaultPlan(server_error=1.0)
    assert send(fake, OutboundContent(text="a")).outcome is SendOutcome.TRANSIENT
    fake.faults = FaultPlan(timeout=1.0, hang_s=2.0)
    assert send(fake, OutboundContent(text="b"), timeout_s=0.3).outcome is SendOutcome.UNKNOWN
    fake.faults = FaultPlan(reset=1.0)
    assert send(fake, OutboundContent(text="c")).outcome in (SendOutcome.UNKNOWN, SendOutcome.TRANSIENT)
    fake.faults = FaultPlan()
    unreachable_port = TelegramChannel(timeout_s=1.0)
    result = asyncio.run(
        unreachable_port.send(account("http://127.0.0.1:9"), str(CHAT), OutboundContent(text="d"))
    )
    asyncio.run(unreachable_port.close())
    assert result.outcome is SendOutcome.TRANSIENT


def test_unknown_chat_and_bad_token_are_permanent(fake):
    """CH3: 400 chat not found and 401 Unauthorized do not retry."""
    assert send(fake, OutboundContent(text="x"), address="@somechannel").outcome is SendOutcome.PERMANENT
    acc = account(fake.url, bot_token="999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")

    async def go():  # type: ignore[no-untyped-def]
        ch = TelegramChannel()
        try:
            return await ch.send(acc, str(CHAT), OutboundContent(text="x"))
        finally:
            await ch.close()

    result = asyncio.run(go())
    assert result.outcome is SendOutcome.PERMANENT and result.error_code == "401"


def test_never_started_chat_is_unreachable(fake):
    """Bots cannot message a user first: 403 can't initiate conversation."""
    result = send(fake, OutboundContent(text="x"), address="42")
    assert result.outcome is SendOutcome.UNREACHABLE


def test_invalid_content_is_refused_before_sending(fake):
    """CH3: over 4096 chars, a 65-byte button id, or a template without text never reach Telegram."""
    assert send(fake, OutboundContent(text="x" * 4097)).outcome is SendOutcome.PERMANENT
    assert (
        send(fake, OutboundContent(text="x", buttons=(Button("b" * 65, "B"),))).outcome
        is SendOutcome.PERMANENT
    )
    assert send(fake, OutboundContent(template="hello")).outcome is SendOutcome.PERMANENT
    assert not fake.requests


def test_error_mapping_follows_the_documented_envelopes():
    """CH3, telegram.md §4: the captured error bodies map to their meaning."""
    assert map_error(429, fx.FLOOD_429).retry_after_s == 34
    assert map_error(429, fx.FLOOD_429_OLD).retry_after_s == 3
    assert map_error(403, fx.BLOCKED_403).outcome is SendOutcome.UNREACHABLE
    assert (
        map_error(
            403, {"ok": False, "error_code": 403, "description": "Forbidden: user is deactivated"}
        ).outcome
        is SendOutcome.UNREACHABLE
    )
    assert map_error(400, fx.CHAT_NOT_FOUND_400).outcome is SendOutcome.PERMANENT
    migrated = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1001},
    }
    assert map_error(400, migrated).outcome is SendOutcome.TRANSIENT
    assert map_error(502, {}).outcome is SendOutcome.TRANSIENT
