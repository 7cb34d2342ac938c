"""The admin registers a Telegram account's webhook at the (fake) Bot API with one button (CH2, S3, U2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from konsent.channels.transport import Policy, Transport
from konsent.store.tables import AuditEntry, ChannelAccount
from tests.channels import fixtures_telegram as fx
from tests.fakes.telegram_fake import TelegramFake
from tests.web.test_admin_auth import as_role

SECRET = "Konsent_webhook-secret_0123456789"


@pytest.fixture
def tg(ctx) -> Iterator[TelegramFake]:  # type: ignore[no-untyped-def]
    with TelegramFake(bots=[(fx.BOT_TOKEN, fx.BOT_USERNAME)]) as fake:
        assert isinstance(fake, TelegramFake)
        # The Bot API's base URL is the operator's setting (KONSENT_PROVIDER_BASE_URLS), never the
        # channel form's (#13 finding 1).
        ctx.http = Transport(Policy(allow_private=True, base_urls={"telegram": fake.url}))
        yield fake


def the_account(ctx) -> ChannelAccount:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalars(select(ChannelAccount).where(ChannelAccount.kind == "telegram")).one()


def test_button_registers_url_secret_and_update_kinds_and_says_so(ctx, demo, client, tg, monkeypatch):
    """CH2: setWebhook with our URL for that account, its secret_token and the update kinds we parse."""
    monkeypatch.setattr(ctx.settings, "base_url", "https://konsent.example")
    client.base_url = "https://testserver"  # cookies are Secure behind an https base URL
    token = as_role(ctx, client, "admin")
    connect_form(client, token, tg)
    acc = the_account(ctx)
    page = client.get("/admin/channels", headers={"accept-language": "en"}).text
    assert f'action="/admin/channels/{acc.id}/webhook"' in page and "Register webhook at the provider" in page
    r = client.post(
        f"/admin/channels/{acc.id}/webhook", data={"csrf_token": token}, headers={"accept-language": "en"}
    )
    assert r.status_code == 200 and "The provider accepted the webhook URL and secret." in r.text
    bot = tg.bots[fx.BOT_TOKEN]
    assert bot.webhook_url == f"https://konsent.example/webhooks/{acc.route_key}"
    assert bot.secret_token == SECRET
    assert set(bot.allowed_updates) >= {"message", "callback_query", "my_chat_member"}
    de = client.post(
        f"/admin/channels/{acc.id}/webhook", data={"csrf_token": token}, headers={"accept-language": "de"}
    )
    assert "Der Anbieter hat Webhook-URL und Geheimnis übernommen." in de.text
    assert SECRET not in r.text + de.text + page
    with ctx.db.read() as s:
        audited = s.scalars(select(AuditEntry).where(AuditEntry.action == "channel.webhook_register")).all()
    assert [e.subject for e in audited] == [f"channel:{acc.id}"] * 2


def test_telegram_refusal_is_shown_in_its_words_in_german_and_english(ctx, demo, client, tg):
    """An http:// base URL: Telegram (the fake) refuses; its description is shown, nothing is set."""
    token = as_role(ctx, client, "owner")
    connect_form(client, token, tg)
    acc = the_account(ctx)
    r = client.post(
        f"/admin/channels/{acc.id}/webhook", data={"csrf_token": token}, headers={"accept-language": "en"}
    )
    assert r.status_code == 502
    assert (
        "The provider refused the webhook URL: Bad Request: bad webhook: An HTTPS URL must be provided"
        in r.text
    )
    de = client.post(
        f"/admin/channels/{acc.id}/webhook", data={"csrf_token": token}, headers={"accept-language": "de"}
    )
    assert "Der Anbieter hat die Webhook-URL abgelehnt: Bad Request: bad webhook" in de.text
    assert tg.bots[fx.BOT_TOKEN].webhook_url == "" and tg.webhook_calls == []


def test_a_secret_telegram_would_refuse_is_caught_before_the_call(ctx, demo, client, tg, monkeypatch):
    monkeypatch.setattr(ctx.settings, "base_url", "https://konsent.example")
    client.base_url = "https://testserver"  # cookies are Secure behind an https base URL
    token = as_role(ctx, client, "owner")
    connect_form(client, token, tg, secret="not allowed!")
    acc = the_account(ctx)
    de = client.post(
        f"/admin/channels/{acc.id}/webhook", data={"csrf_token": token}, headers={"accept-language": "de"}
    )
    assert de.status_code == 422 and "das Geheimnis (Secret Token) muss aus 1–256 Zeichen" in de.text
    assert not any(method == "setwebhook" for method, _ in tg.requests)


def test_only_managers_with_csrf_and_not_for_channels_without_registration(ctx, demo, client, tg):
    """S3: an agent is refused; a missing CSRF token is refused; the simulator has nothing to register."""
    token = as_role(ctx, client, "owner")
    connect_form(client, token, tg)
    acc = the_account(ctx)
    assert client.post(f"/admin/channels/{acc.id}/webhook", data={}).status_code == 403
    with ctx.db.read() as s:
        sim = s.scalars(select(ChannelAccount).where(ChannelAccount.kind == "simulator")).first()
    r = client.post(
        f"/admin/channels/{sim.id}/webhook", data={"csrf_token": token}, headers={"accept-language": "en"}
    )
    assert r.status_code == 422 and "For this channel the webhook URL is entered at the provider." in r.text
    client.cookies.clear()
    agent = as_role(ctx, client, "agent")
    assert client.post(f"/admin/channels/{acc.id}/webhook", data={"csrf_token": agent}).status_code == 403
    assert tg.webhook_calls == []


def connect_form(client, token: str, fake: TelegramFake, secret: str = SECRET) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/admin/channels",
        data={
            "csrf_token": token,
            "kind": "telegram",
            "name": "Shop-Bot",
            "bot_username": fx.BOT_USERNAME,
            "bot_token": fx.BOT_TOKEN,
            "secret_token": secret,
        },
    )
    assert r.status_code == 200, r.text
