"""Consent-core flows over Threema: the fake gateway calls konsent's real callback URL (C2, C4, CH1-CH4)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from sqlalchemy import func, select

from konsent.channels.threema import TYPE_TEXT, generate_private_key, public_key_hex
from konsent.flows.consent import optin
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.store.tables import Consent, Counter, Message, WebhookEvent
from tests.channels.fixtures_telegram import add_account, serve_konsent
from tests.conftest import drain
from tests.fakes.threema_fake import ThreemaFake

GATEWAY = "*KONSENT"
SECRET = "callback-and-api-secret"
USER = "ECHOECHO"


@dataclass
class Setup:
    ctx: Konsent
    fake: ThreemaFake
    account_id: int
    url: str


@pytest.fixture
def th(ctx, demo) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    private = generate_private_key()
    with ThreemaFake(GATEWAY, SECRET, public_key_hex(private)) as fake:
        assert isinstance(fake, ThreemaFake)
        fake.add_user(USER)
        account_id, route_key = add_account(
            ctx,
            "threema",
            {"gateway_id": GATEWAY, "api_base": fake.url},
            {"api_secret": SECRET, "private_key": private},
        )
        with serve_konsent(ctx) as base:
            fake.callback_url = f"{base}/webhooks/{route_key}"
            yield Setup(ctx, fake, account_id, fake.callback_url)


def subscribe(th: Setup, topics: list[str]) -> None:
    with th.ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        pending = optin.request_opt_in(
            th.ctx, s, tenant, channel_account_id=th.account_id, topic_slugs=topics, locale="de"
        )
    link = urlparse(pending.deep_link)
    assert (link.netloc, link.path) == ("threema.id", f"/{GATEWAY}")
    prefill = parse_qs(link.query)["text"][0]
    assert pending.code in prefill
    assert th.fake.user_sends(USER, prefill) == [200]
    drain(th.ctx)


def consents(ctx: Konsent) -> dict[str, str]:
    with ctx.db.read() as s:
        return {c.purpose: c.status for c in s.scalars(select(Consent)).all()}


def test_code_sent_from_threema_confirms_and_the_confirmation_arrives_encrypted(th):
    """C2: the prefilled code in an E2E message confirms; the answer is readable on the phone."""
    subscribe(th, ["angebote", "produktnews"])
    assert consents(th.ctx) == {"newsletter:angebote": "active", "newsletter:produktnews": "active"}
    [confirmation] = th.fake.texts_to(USER)
    assert "Angebote" in confirmation and "STOP" in confirmation


def test_stop_over_threema_withdraws(th):
    """C4: STOP withdraws every topic and the contact is told."""
    subscribe(th, ["angebote"])
    assert th.fake.user_sends(USER, "STOP") == [200]
    drain(th.ctx)
    assert consents(th.ctx) == {"newsletter:angebote": "withdrawn"}
    assert len(th.fake.texts_to(USER)) == 2


def test_delivery_receipts_move_status_forward_never_back(th):
    """CH4: read before delivered stays read; statuses keyed by the gateway's message id."""
    subscribe(th, ["angebote"])
    with th.ctx.db.read() as s:
        out = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert out.status == "sent"
        provider_id = out.provider_id
    assert provider_id == th.fake.inbox[USER][0].message_id
    assert th.fake.user_receipt(USER, [provider_id], 0x02) == [200]
    assert th.fake.user_receipt(USER, [provider_id], 0x01) == [200]
    with th.ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.direction == "out")).one().status == "read"


def test_duplicate_callback_is_stored_once(th):
    """Invariant 6: the same (from, messageId) twice → one inbound message."""
    form = th.fake.callback_form(USER, TYPE_TEXT, b"Hallo", message_id="0102030405060708")
    assert th.fake.post_callback(form) == [200]
    assert th.fake.post_callback(form) == [200]
    with th.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1


def test_bad_mac_is_rejected_and_nothing_is_stored(th):
    """CH2: a forged callback → 403, only the rejection counter moves."""
    fields = dict(parse_qs(th.fake.callback_form(USER, TYPE_TEXT, b"Hallo").decode()))
    forged = {k: v[0] for k, v in fields.items()}
    forged["from"] = "ABCDEFGH"
    r = httpx.post(
        th.url, content=urlencode(forged), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 403
    with th.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        assert s.scalars(select(Counter).where(Counter.name == "webhook_rejected:threema")).one().value == 1


def test_malformed_callback_is_400_and_a_location_is_200_and_kept_for_staff(th):
    """Bad input: an authentic but unreadable box → 400; a location → 200, stored for the inbox (CH5)."""
    from tests.fakes import threema_wire as wire

    fields = wire.callback(
        SECRET, USER, GATEWAY, "0102030405060708", 1_700_000_000, b"\x00" * 24, b"\x01" * 40
    )
    r = httpx.post(
        th.url, content=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400
    assert th.fake.post_callback(th.fake.callback_form(USER, 0x10, b"47.1,8.5")) == [200]
    with th.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 1


def test_service_reply_reaches_the_phone_encrypted_and_is_tracked(th):
    """CH1, CH4: the contact writes, staff answers on purpose `service` (no newsletter consent needed);
    the phone decrypts it and the read receipt moves it to read."""
    from konsent.flows import message_desk

    assert th.fake.user_sends(USER, "Habt ihr Samstag offen?") == [200]
    drain(th.ctx)
    before = len(th.fake.texts_to(USER))  # the bot may have greeted
    with th.ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        contact_id = s.scalars(select(Message.contact_id).where(Message.direction == "in")).one()
        msg = message_desk.send_message(
            th.ctx, s, tenant.id, "staff:1", contact_id, "service", "Ja, 9-14 Uhr."
        )
        msg_id = msg.id
    drain(th.ctx)
    assert th.fake.texts_to(USER)[before:] == ["Ja, 9-14 Uhr."]
    with th.ctx.db.read() as s:
        provider_id = s.get(Message, msg_id).provider_id
    assert th.fake.user_receipt(USER, [provider_id], 0x02) == [200]
    with th.ctx.db.read() as s:
        assert s.get(Message, msg_id).status == "read"
