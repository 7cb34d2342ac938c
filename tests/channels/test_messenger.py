# ruff: noqa: F811, E501
"""Facebook Messenger and Instagram: signature, m.me / ig.me opt-in refs, send API, errors (CH1-CH4, C2)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from konsent.channels.base import AccountConfig, Button, OutboundContent, SendOutcome
from konsent.channels.messenger import InstagramChannel, MessengerChannel
from konsent.domain.events import InboundMessage, StatusUpdate, StatusWatermark, UnknownEvent
from konsent.store.tables import Consent, Counter, Message, WebhookEvent
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain

PSID = "6543210987654321"
MS = MessengerChannel()
IG = InstagramChannel()
BARE = AccountConfig(1, "messenger", secrets={"app_secret": fx.APP_SECRET})


def consents(ctx) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return {c.purpose: c.status for c in s.scalars(select(Consent))}


def out_messages(ctx) -> list[Message]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return list(s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)))


# --- webhooks --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
def test_unsigned_or_forged_webhook_is_rejected_and_only_counted(ctx, client, kind):
    """CH2: same X-Hub-Signature-256 as WhatsApp; 401/403 and a counter, nothing else."""
    conn = fx.connect(ctx, kind)
    body = fx.meta_bytes(fx.page_envelope(fx.MS_ITEM_TEXT_QUICK_REPLY, page_id=fx.PAGE_ID))
    url = f"/webhooks/{conn.route_key}"
    assert client.post(url, content=body, headers={"content-type": "application/json"}).status_code == 401
    assert client.post(url, content=body, headers=fx.signed(body, "forged")).status_code == 403
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        assert s.get(Counter, f"webhook_rejected:{kind}").value == 2


def test_handshake_with_the_verify_token(ctx, client):
    conn = fx.connect(ctx, "messenger")
    q = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": fx.VERIFY_TOKEN}
    assert client.get(f"/webhooks/{conn.route_key}", params=q).text == "1158201444"
    assert client.get(f"/webhooks/{conn.route_key}", params={**q, "hub.verify_token": "x"}).status_code == 403


@pytest.mark.parametrize("name", sorted(fx.MESSENGER_WEBHOOKS))
def test_every_documented_messenger_payload_parses(name):
    """CH2: each messaging[] example of messenger-instagram.md §2."""
    assert MS.parse(BARE, fx.meta_bytes(fx.MESSENGER_WEBHOOKS[name]))


@pytest.mark.parametrize("name", sorted(fx.INSTAGRAM_WEBHOOKS))
def test_every_documented_instagram_payload_parses(name):
    assert IG.parse(BARE, fx.meta_bytes(fx.INSTAGRAM_WEBHOOKS[name]))


def test_quick_reply_postback_delivery_and_watermark_events():
    """CH2, CH4: quick reply/postback → button; delivery mids → statuses plus the watermark; read → watermark."""
    [quick] = MS.parse(BARE, fx.meta_bytes(fx.MESSENGER_WEBHOOKS["text_quick_reply"]))
    assert (quick.kind, quick.payload, quick.text, quick.account_ref) == (
        "button", "<DEVELOPER_DEFINED_PAYLOAD>", "hello, world!", "<PAGE_ID>")  # fmt: skip
    [pb] = MS.parse(BARE, fx.meta_bytes(fx.MESSENGER_WEBHOOKS["postback"]))
    assert (pb.kind, pb.payload, pb.text) == ("button", "<DEVELOPER_DEFINED_PAYLOAD>", "<BUTTON_TITLE>")
    delivered, up_to = MS.parse(BARE, fx.meta_bytes(fx.MESSENGER_WEBHOOKS["delivery"]))
    assert isinstance(delivered, StatusUpdate) and delivered.status == "delivered"
    assert isinstance(up_to, StatusWatermark) and up_to.status == "delivered"
    [read] = MS.parse(BARE, fx.meta_bytes(fx.MESSENGER_WEBHOOKS["read"]))
    assert isinstance(read, StatusWatermark) and (read.status, read.address) == ("read", "<PSID>")
    assert read.watermark == datetime(2016, 3, 22, 17, 47, 36, 253000, tzinfo=UTC)  # 1458668856253 ms
    [ig_read] = IG.parse(BARE, fx.meta_bytes(fx.IG_READ))
    assert isinstance(ig_read, StatusUpdate) and (ig_read.provider_id, ig_read.status) == (
        "MESSAGE-ID",
        "read",
    )


def test_referral_refs_become_opt_in_codes_only_when_they_are_codes():
    """C2: m.me ?ref= arrives as referral (existing thread) or postback.referral (Get Started)."""
    for item in (fx.MS_ITEM_REFERRAL_EXISTING, fx.MS_ITEM_REFERRAL_GET_STARTED):
        [ev] = MS.parse(BARE, fx.meta_bytes(fx.page_envelope(item)))
        assert isinstance(ev, InboundMessage) and ev.optin_code is None  # "REF-PARAMETER-INFORMATION"
        item = copy.deepcopy(item)
        (item.get("postback") or item)["referral"]["ref"] = "KS0123456789"
        [ev] = MS.parse(BARE, fx.meta_bytes(fx.page_envelope(item)))
        assert ev.optin_code == "KS0123456789"


def test_echoes_of_our_own_messages_are_not_inbound():
    """CH2: is_echo is the page speaking, not the contact."""
    [echo] = IG.parse(BARE, fx.meta_bytes(fx.IG_ECHO))
    assert isinstance(echo, UnknownEvent) and echo.kind == "echo"


def test_multi_entry_batch_yields_every_event():
    items = [
        fx.MS_ITEM_TEXT_QUICK_REPLY,
        fx.MS_ITEM_POSTBACK,
        fx.MS_ITEM_DELIVERY,
        fx.MS_ITEM_REFERRAL_EXISTING,
    ]
    batch = fx.page_envelope(*items)
    batch["entry"].append(copy.deepcopy(fx.page_envelope(fx.MS_ITEM_DELIVERY)["entry"][0]))
    batch["entry"][-1]["messaging"][0]["delivery"]["mids"] = ["m_1", "m_2"]
    # four items (the delivery: its mid and its watermark), then two mids and their watermark
    assert len(MS.parse(BARE, fx.meta_bytes(batch))) == 4 + 1 + 2 + 1


def test_wrong_object_and_malformed_shapes():
    """CH2: another object is acknowledged and ignored; broken shapes are a 400 (ValueError)."""
    assert isinstance(MS.parse(BARE, fx.meta_bytes(fx.IG_MESSAGE))[0], UnknownEvent)
    for bad in (
        b"[]",
        b'{"object":"page","entry":[{"messaging":{}}]}',
        b'{"object":"page","entry":[{"messaging":[{"sender":{}}]}]}',
    ):
        with pytest.raises(ValueError):
            MS.parse(BARE, bad)


# --- consent-core flows against the fake ------------------------------------------------------


@pytest.mark.parametrize("new_thread", [False, True])
def test_opt_in_by_m_me_ref_confirms_and_the_reply_reaches_the_page(ctx, client, fake, new_thread):
    """C2: m.me/<page>?ref=<code> → referral (or Get Started postback) → consent → confirmation sent."""
    conn = fx.connect(ctx, "messenger", fake)
    pending = fx.request_code(ctx, conn, ["angebote"])
    assert pending.deep_link == f"https://m.me/demogmbh?ref={pending.code}"
    fake.user_referral(fx.PAGE_ID, PSID, pending.code, new_thread=new_thread)
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    assert consents(ctx) == {"newsletter:angebote": "active"}
    drain(ctx)
    [sent] = fake.accepted
    assert sent["body"]["recipient"] == {"id": PSID} and sent["body"]["messaging_type"] == "RESPONSE"
    assert "Offers" in sent["body"]["message"]["text"]
    statuses = fake.wait_outgoing(2)  # delivery with the mid, read watermark
    assert fx.deliver(client, conn, statuses) == [200, 200]
    assert out_messages(ctx)[0].status == "read"  # the watermark is the message's own stamp
    fake.user_message(fx.PAGE_ID, PSID, "STOP")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    assert consents(ctx) == {"newsletter:angebote": "withdrawn"}
    drain(ctx)
    assert len(fake.accepted) == 2


def test_opt_in_by_ig_me_ref_on_instagram(ctx, client, fake):
    """C2: ig.me/m/<username>?ref=<code> on Instagram."""
    conn = fx.connect(ctx, "instagram", fake)
    pending = fx.request_code(ctx, conn, ["produktnews"])
    assert pending.deep_link == f"https://ig.me/m/demo.gmbh?ref={pending.code}"
    fake.pages[fx.PAGE_ID].obj = "instagram"
    d = fake.user_referral(fx.PAGE_ID, PSID, pending.code)
    fake.take_outgoing()
    # Instagram posts with the IG account id in entry[].id
    body = d.body.replace(f'"id":"{fx.PAGE_ID}","time"'.encode(), f'"id":"{fx.IG_ID}","time"'.encode())
    assert (
        client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code == 200
    )
    assert consents(ctx) == {"newsletter:produktnews": "active"}
    drain(ctx)
    assert fake.accepted[0]["body"]["recipient"] == {"id": PSID}


def test_duplicate_message_is_stored_once(ctx, client, fake):
    """Invariant 6."""
    conn = fx.connect(ctx, "messenger", fake)
    d = fake.user_message(fx.PAGE_ID, PSID, "Hallo")
    fake.take_outgoing()
    assert fx.deliver(client, conn, [d, d]) == [200, 200]
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1


# --- send API ---------------------------------------------------------------------------------


def test_send_text_with_quick_replies_uses_the_page_token(fake):
    """CH3: POST /{page-id}/messages?access_token=…, quick replies as buttons."""
    fake.add_page(fx.PAGE_ID, "EAAP-page-token", fx.APP_SECRET)
    acc = fx.account_config("messenger", fake)
    content = OutboundContent(text="Pick one", buttons=(Button("A", "Alpha"), Button("B", "Beta")))
    fake.window_opened(fx.PAGE_ID, PSID)
    r = fx.run_send(MessengerChannel(), acc, PSID, content)
    assert r.outcome is SendOutcome.SENT and r.provider_id.startswith("m_")
    body = fake.accepted[0]["body"]
    assert body["message"]["quick_replies"][1] == {"content_type": "text", "title": "Beta", "payload": "B"}
    bad = AccountConfig(
        1, "messenger", settings=acc.settings, secrets={**acc.secrets, "page_access_token": "x"}
    )
    assert fx.run_send(MessengerChannel(), bad, PSID, content).error_code == "190/1234567"


def test_outside_the_window_the_page_gets_code_10_which_means_window_closed(fake):
    """CH3: Messenger code 10 / 2018278 → window closed (no templates on Messenger)."""
    fake.add_page(fx.PAGE_ID, "EAAP-page-token", fx.APP_SECRET)
    fake.enforce_window = True
    r = fx.run_send(
        MessengerChannel(), fx.account_config("messenger", fake), PSID, OutboundContent(text="Hi")
    )
    assert (r.outcome, r.error_code) == (SendOutcome.WINDOW_CLOSED, "10/2018278")
    tpl = OutboundContent(template="weekly", template_language="de")
    assert (
        fx.run_send(MessengerChannel(), fx.account_config("messenger", fake), PSID, tpl).outcome
        is SendOutcome.PERMANENT
    )


def test_capabilities_and_setup_fields():
    """CH1, S7."""
    assert (
        MS.capabilities.service_window_hours,
        MS.capabilities.templates,
        MS.capabilities.throughput_per_s,
    ) == (24, False, 300)
    assert IG.capabilities.max_text_len == 1000 and "Ireland" in IG.capabilities.processing_region
    assert {f.name for f in MS.setup_fields if f.secret} == {
        "page_access_token",
        "app_secret",
        "verify_token",
    }
