"""Threema Gateway adapter (E2E mode): callback MAC, decryption, receipts, send_e2e errors (CH1-CH4)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode

import pytest

from konsent.channels.base import AccountConfig, OutboundContent, SendOutcome, WebhookRejected, WebhookRequest
from konsent.channels.threema import (
    TYPE_RECEIPT,
    TYPE_TEXT,
    ThreemaChannel,
    _map_status,
    callback_mac,
    generate_private_key,
    public_key_hex,
)
from konsent.domain.errors import InvalidInput
from konsent.domain.events import InboundMessage, StatusUpdate, UnknownEvent
from tests.fakes import threema_wire as wire
from tests.fakes.telegram_fake import FaultPlan
from tests.fakes.threema_fake import ThreemaFake

# threema.md §3: the Rust SDK's test vector [VERBATIM]
VECTOR_BODY = (
    b"from=ECHOECHO&to=*TESTTST&messageId=0102030405060708&date=1616950936"
    b"&nonce=ffffffffffffffffffffffffffffffffffffffffffffffff&box=012345abcdef"
    b"&mac=622b362e8353658ee649a5548acecc9ce9b88384d6b7e08e212446d68455b14e"
)
GATEWAY = "*KONSENT"
SECRET = "nevergonnagiveyouup"
PRIVATE = generate_private_key()
USER = "ECHOECHO"


@pytest.fixture
def fake() -> Iterator[ThreemaFake]:
    with ThreemaFake(GATEWAY, SECRET, public_key_hex(PRIVATE)) as f:
        assert isinstance(f, ThreemaFake)
        f.add_user(USER)
        yield f


def account(
    api_base: str = "http://127.0.0.1:9", settings: dict | None = None, **secrets: str
) -> AccountConfig:  # type: ignore[type-arg]
    return AccountConfig(
        id=7,
        kind="threema",
        settings={"gateway_id": GATEWAY, "api_base": api_base, **(settings or {})},
        secrets={"api_secret": SECRET, "private_key": PRIVATE, **secrets},
    )


def req(body: bytes) -> WebhookRequest:
    return WebhookRequest("POST", {"content-type": "application/x-www-form-urlencoded"}, {}, body)


def send(fake: ThreemaFake, text: str, to: str = USER, acc: AccountConfig | None = None):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        ch = ThreemaChannel(timeout_s=2.0)
        try:
            return await ch.send(acc or account(fake.url), to, OutboundContent(text=text))
        finally:
            await ch.close()

    return asyncio.run(go())


# --- verify ---------------------------------------------------------------------------------------


def test_callback_mac_matches_the_rust_sdk_vector_and_fails_with_another_secret():
    """CH2, threema.md §3: HMAC-SHA256 over from‖to‖messageId‖date‖nonce‖box, constant time."""
    ch = ThreemaChannel()
    ok = AccountConfig(1, "threema", {"gateway_id": "*TESTTST"}, {"api_secret": "nevergonnagiveyouup"})
    ch.verify(ok, req(VECTOR_BODY))
    wrong = AccountConfig(1, "threema", {"gateway_id": "*TESTTST"}, {"api_secret": "nevergonnaletyoudown"})
    with pytest.raises(WebhookRejected) as exc:
        ch.verify(wrong, req(VECTOR_BODY))
    assert exc.value.status == 403


def test_callback_for_another_gateway_id_or_without_mac_is_rejected():
    """CH2: `to` must be our gateway ID; a missing MAC or field is never accepted."""
    ch = ThreemaChannel()
    other = AccountConfig(1, "threema", {"gateway_id": "*OTHERID"}, {"api_secret": SECRET})
    with pytest.raises(WebhookRejected):
        ch.verify(other, req(VECTOR_BODY))
    fields = dict(parse_qsl(VECTOR_BODY.decode()))
    ok = AccountConfig(1, "threema", {"gateway_id": "*TESTTST"}, {"api_secret": SECRET})
    for drop in ("mac", "box", "nonce"):
        body = urlencode({k: v for k, v in fields.items() if k != drop}).encode()
        with pytest.raises(WebhookRejected) as exc:
            ch.verify(ok, req(body))
        assert exc.value.status == 401
    with pytest.raises(WebhookRejected):
        ch.verify(ok, req(b"\xff\xfe"))


def test_mac_is_computed_over_the_decoded_field_values():
    assert (
        callback_mac(SECRET, dict(parse_qsl(VECTOR_BODY.decode())))
        == dict(parse_qsl(VECTOR_BODY.decode()))["mac"]
    )


# --- parse ----------------------------------------------------------------------------------------


def test_encrypted_text_is_decrypted_with_the_senders_public_key_from_the_gateway(fake):
    """CH2: the box opens with our private key and the sender's key fetched via /pubkeys."""
    form = fake.callback_form(USER, TYPE_TEXT, "Hallo Konsent 👋".encode(), message_id="0102030405060708")
    ch = ThreemaChannel()
    ch.verify(account(fake.url), req(form))
    [ev] = ch.parse(account(fake.url), form)
    assert isinstance(ev, InboundMessage)
    assert (ev.address, ev.text, ev.provider_id) == (USER, "Hallo Konsent 👋", USER + "0102030405060708")
    assert ev.profile_name == "Echoecho"


def test_configured_public_key_needs_no_lookup(fake):
    """The account may pin public keys in settings (no network during parse)."""
    pub = fake.add_user("ABCDEFGH")
    form = fake.callback_form("ABCDEFGH", TYPE_TEXT, b"hi")
    acc = account("http://127.0.0.1:9", settings={"pubkeys": {"ABCDEFGH": pub}})
    [ev] = ThreemaChannel().parse(acc, form)
    assert ev.text == "hi"


def test_delivery_receipt_updates_every_listed_message(fake):
    """CH4: 0x80 receipt → a status per message id; 0x01 delivered, 0x02 read."""
    ids = ["0a1b2c3d4e5f6071", "1111111111111111"]
    for code, status in ((0x01, "delivered"), (0x02, "read")):
        form = fake.callback_form(USER, TYPE_RECEIPT, wire.receipt(code, ids))
        events = ThreemaChannel().parse(account(fake.url), form)
        assert [(e.provider_id, e.status) for e in events if isinstance(e, StatusUpdate)] == [
            (ids[0], status),
            (ids[1], status),
        ]


def test_other_message_types_are_unknown_events(fake):
    """CH2: image, file, location ... are acknowledged and ignored."""
    form = fake.callback_form(USER, 0x17, b'{"b":"x"}')
    [ev] = ThreemaChannel().parse(account(fake.url), form)
    assert isinstance(ev, UnknownEvent) and ev.kind == "threema:0x17"


def test_undecryptable_or_malformed_callbacks_raise_value_error(fake):
    """Bad input → 400: wrong key, bad hex, short nonce, bad receipt length, unknown sender."""
    ch = ThreemaChannel()
    form = dict(parse_qsl(fake.callback_form(USER, TYPE_TEXT, b"x").decode()))
    bad_key = account(fake.url, private_key=generate_private_key())
    with pytest.raises(ValueError):
        ch.parse(bad_key, urlencode(form).encode())
    for field, value in (
        ("nonce", "abcd"),
        ("box", "zz"),
        ("date", "-1"),
        ("from", "bad"),
        ("messageId", "x"),
    ):
        with pytest.raises(ValueError):
            ch.parse(account(fake.url), urlencode({**form, field: value}).encode())
    with pytest.raises(ValueError):
        ch.parse(account(fake.url), fake.callback_form(USER, TYPE_RECEIPT, b"\x01\x00\x01"))
    fake.users["NOBODY00"] = fake.users[USER]  # the fake can encrypt as a sender the gateway does not know
    stranger = fake.callback_form("NOBODY00", TYPE_TEXT, b"x")
    del fake.users["NOBODY00"]
    with pytest.raises(ValueError):
        ch.parse(account(fake.url), stranger)


# --- send -----------------------------------------------------------------------------------------


def test_send_e2e_round_trip_is_readable_on_the_users_phone(fake):
    """CH3: encrypted for the recipient's key, random padding; the id is the gateway's answer."""
    result = send(fake, "Danke für deine Anmeldung ✓")
    assert result.outcome is SendOutcome.SENT and len(result.provider_id or "") == 16
    assert fake.texts_to(USER) == ["Danke für deine Anmeldung ✓"]
    [(_, form)] = fake.requests
    assert set(form) == {"from", "to", "nonce", "box"} and len(bytes.fromhex(form["nonce"])) == 24
    assert "Danke" not in form["box"]


def test_send_error_statuses_map_to_their_meaning(fake):
    """CH3, threema.md §2: 401/402/400/413 permanent, unknown ID unreachable, 429 snooze, 5xx retry."""
    assert send(fake, "x", acc=account(fake.url, api_secret="wrong")).outcome is SendOutcome.PERMANENT
    assert send(fake, "x", to="ZZZZZZZZ").outcome is SendOutcome.UNREACHABLE
    fake.credits = 0
    result = send(fake, "x")
    assert result.outcome is SendOutcome.PERMANENT and result.error_code == "402"
    fake.credits = 10
    fake.faults = FaultPlan(rate_limit=1.0)
    assert send(fake, "x").outcome is SendOutcome.RETRY_AFTER
    fake.faults = FaultPlan(server_error=1.0)
    assert send(fake, "x").outcome is SendOutcome.TRANSIENT
    fake.faults = FaultPlan()
    assert _map_status(400, {}).outcome is SendOutcome.PERMANENT
    assert _map_status(413, {}).outcome is SendOutcome.PERMANENT
    assert _map_status(429, {"Retry-After": "30"}).retry_after_s == 30


def test_text_over_3500_bytes_is_refused_client_side(fake):
    """CH3: the limit is 3500 bytes of UTF-8, not characters."""
    result = send(fake, "ü" * 1751)  # 3502 bytes
    assert result.outcome is SendOutcome.PERMANENT and not fake.requests
    assert send(fake, "ü" * 1750).outcome is SendOutcome.SENT


def test_deep_link_opens_the_gateway_id_with_prefilled_text():
    """C2: https://threema.id/<ID>?text=<prefill>."""
    link = ThreemaChannel().deep_link(account(), "KS0123456789", "Code: KS0123456789")
    assert link == "https://threema.id/*KONSENT?text=Code%3A%20KS0123456789"
    with pytest.raises(InvalidInput):
        ThreemaChannel().deep_link(AccountConfig(1, "threema", {}, {}), "KS0123456789", "x")
