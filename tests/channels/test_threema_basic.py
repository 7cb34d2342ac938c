"""Threema Gateway Basic mode: send_simple against the fake; what such an account can do (CH1, S7)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from konsent.channels.base import AccountConfig, OutboundContent, SendOutcome
from konsent.channels.threema import generate_private_key, public_key_hex
from konsent.channels.threema_basic import ThreemaBasicChannel, recipient_field
from konsent.domain.errors import InvalidInput
from konsent.flows import widget
from konsent.flows.consent import optin
from konsent.flows.organisation import tenants
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.privacy import importer
from konsent.store.tables import Contact, Counter, Message, WebhookEvent
from tests.channels.fixtures_telegram import add_account
from tests.conftest import drain
from tests.fakes.threema_fake import ThreemaFake

GATEWAY, SECRET, USER = "*KONSBAS", "basic-api-secret", "ECHOECHO"


@pytest.fixture
def fake() -> Iterator[ThreemaFake]:
    with ThreemaFake(GATEWAY, SECRET, public_key_hex(generate_private_key()), mode="basic") as f:
        assert isinstance(f, ThreemaFake)
        f.add_user(USER)
        f.phones["4915112345678"] = USER
        f.emails["echo@example.com"] = USER
        yield f


def cfg(fake: ThreemaFake, secret: str = SECRET) -> AccountConfig:
    return AccountConfig(
        1, "threema_basic", {"gateway_id": GATEWAY, "api_base": fake.url}, {"api_secret": secret}
    )


def send(account: AccountConfig, address: str, text: str = "Hallo aus Basic"):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        adapter = ThreemaBasicChannel(timeout_s=5)
        try:
            return await adapter.send(account, address, OutboundContent(text=text))
        finally:
            await adapter.close()

    return asyncio.run(go())


def test_recipient_is_an_id_a_phone_number_or_an_email():
    assert recipient_field("ECHOECHO") == ("to", "ECHOECHO")
    assert recipient_field("+49 151") is None
    assert recipient_field("+4915112345678") == ("phone", "4915112345678")
    assert recipient_field("Echo@Example.com") == ("email", "echo@example.com")
    assert recipient_field("not a recipient") is None


@pytest.mark.parametrize(
    ("address", "field"),
    [("ECHOECHO", "to"), ("+4915112345678", "phone"), ("echo@example.com", "email")],
)
def test_send_simple_carries_the_text_for_threema_to_encrypt(fake, address, field):
    """CH3: POST /send_simple with from, one recipient field, text, secret; the answer is the id."""
    r = send(cfg(fake), address)
    assert r.outcome is SendOutcome.SENT and len(r.provider_id) == 16
    [(endpoint, params)] = list(fake.requests)
    assert endpoint == "send_simple" and set(params) == {"from", field, "text"}  # secret not recorded
    assert params["text"] == "Hallo aus Basic"  # plaintext on the wire: Threema encrypts it
    assert fake.texts_to(USER) == ["Hallo aus Basic"]


def test_gateway_errors_map_to_outcomes(fake):
    """CH3: 404 (phone/e-mail without Threema) → unreachable; 400, 401, 402 → permanent; nothing sent."""
    assert send(cfg(fake), "+4917000000000").outcome is SendOutcome.UNREACHABLE
    assert send(cfg(fake), "NOSUCHID").error_code == "400"
    assert send(cfg(fake, "wrong"), USER).error_code == "401"
    fake.credits = 0
    assert send(cfg(fake), USER).error_code == "402"
    assert fake.texts_to(USER) == []


def test_too_long_text_is_refused_before_and_by_the_gateway(fake):
    """3,500 bytes of UTF-8 at most: konsent refuses first; the fake answers 413 like the gateway."""
    long = "ä" * 1751  # 3,502 bytes
    r = send(cfg(fake), USER, long)
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "413") and not fake.requests
    raw = httpx.post(
        f"{fake.url}/send_simple", data={"from": GATEWAY, "to": USER, "text": long, "secret": SECRET}
    )
    assert raw.status_code == 413 and fake.texts_to(USER) == []


def test_an_e2e_gateway_id_refuses_send_simple_and_vice_versa(fake):
    """400: the ID is not set up for the requested mode."""
    fake.mode = "e2e"
    r = send(cfg(fake), USER)
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "400")
    assert "not set up for this mode" in r.error_text
    fake.mode = "basic"
    raw = httpx.post(
        f"{fake.url}/send_e2e",
        data={"from": GATEWAY, "to": USER, "nonce": "00" * 24, "box": "00" * 32, "secret": SECRET},
    )
    assert raw.status_code == 400


def test_basic_account_offers_no_opt_in_refuses_callbacks_and_sends_on_consent(ctx, demo, client, fake):
    """C2, CH2, C5: no code can come back, so the widget leaves it out; callbacks → 403 and a counter;
    an imported contact with consent evidence gets the newsletter through send_simple."""
    account_id, route_key = add_account(ctx, "threema_basic", {"gateway_id": GATEWAY, "api_base": fake.url},
                                        {"api_secret": SECRET})  # fmt: skip
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        with pytest.raises(InvalidInput):
            optin.request_opt_in(
                ctx, s, tenant, channel_account_id=account_id, topic_slugs=["angebote"], locale="de"
            )
    offered = widget.widget_config(ctx, "demo", "en").channels
    assert offered and account_id not in {c.id for c in offered}
    r = client.post(f"/webhooks/{route_key}", content=b"from=ECHOECHO&to=*KONSBAS",
                    headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.get(Counter, "webhook_rejected:threema_basic").value == 1
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    csv = (
        "address,topics,consent_text_version,consent_time,source\n"
        "ECHOECHO,angebote,1,2025-03-01T10:00:00Z,form\n"
    )
    report = importer.import_csv(ctx, demo.tenant_id, account_id, csv.encode(), actor="user:1")
    assert [row.outcome for row in report.rows] == ["consented"]
    with ctx.db.write() as s:
        contact = s.scalars(select(Contact).where(Contact.tenant_id == demo.tenant_id)).one()
        enqueue_message(ctx, s, contact, "newsletter:angebote", OutboundContent(text="Neue Angebote"),
                        channel_account_id=account_id)  # fmt: skip
    drain(ctx)
    assert fake.texts_to(USER) == ["Neue Angebote"]
    with ctx.db.read() as s:
        msg = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert msg.status == "sent" and len(msg.provider_id) == 16


def test_channel_page_says_threema_reads_the_text(ctx, demo, client, fake):
    """S7: the admin's facts for a Basic-mode account name the trade-off, in English and German."""
    from tests.web.test_admin_auth import as_role

    token = as_role(ctx, client, "owner")
    r = client.post(
        "/admin/channels",
        data={
            "csrf_token": token,
            "kind": "threema_basic",
            "name": "Threema Basic",
            "gateway_id": GATEWAY,
            "api_secret": SECRET,
            "api_base": fake.url,
        },
        headers={"accept-language": "en"},
    )
    assert r.status_code == 200 and "Basic mode: Threema&#39;s server encrypts the messages" in r.text
    assert SECRET not in r.text
    de = client.get("/admin/channels", headers={"accept-language": "de"}).text
    assert "Basis-Modus: Der Server von Threema verschlüsselt die Nachrichten" in de
    assert "keine: dieser Kanal sendet nur, er empfängt nichts" in de
