"""WhatsApp Cloud API: webhook authenticity, parsing every event, contacts by BSUID (CH1, CH2, CH4)."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import func, select

from konsent.channels import meta
from konsent.channels.base import AccountConfig, WebhookRejected, WebhookRequest
from konsent.channels.whatsapp import WhatsAppCloudChannel
from konsent.domain.events import InboundMessage, MarketingPreference, StatusUpdate, UnknownEvent
from konsent.flows.inbound.receive import receive_webhook
from konsent.store.tables import Consent, Contact, ContactIdentity, Counter, Message, WebhookEvent
from tests.channels import fixtures_meta as fx

ADAPTER = WhatsAppCloudChannel()
ACCOUNT = AccountConfig(1, "whatsapp", settings={}, secrets={"app_secret": "my_app_secret"})


def count(ctx, table) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def inbound(ctx) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) or 0)


def post(ctx, conn, payload, headers=None):  # type: ignore[no-untyped-def]
    body = payload if isinstance(payload, bytes) else fx.meta_bytes(payload)
    req = WebhookRequest("POST", headers if headers is not None else fx.signed(body), {}, body)
    return receive_webhook(ctx, conn.route_key, req)


# --- signature (whatsapp-cloud.md §2) -------------------------------------------------------

VECTORS = [
    ("secret", b"test", "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"),
    (
        "my_app_secret",
        b'{"object":"whatsapp_business_account","entry":[]}',
        "sha256=1e948187320e1d8a8ab09e20b7172f8fe97e79394c0980b59b485e00288e389d",
    ),
    (
        "my_app_secret",
        b'{"object":"page","entry":[{"messaging":[{"message":{"text":"\\u00e4\\u00f6\\u00e5"}}]}]}',
        "sha256=22db36f044de2f5cc7fb5ff7c769e5f0d9647ae3d5ff0fde67161fea53430b42",
    ),
]


@pytest.mark.parametrize(("secret", "body", "signature"), VECTORS)
def test_signature_test_vectors_from_the_protocol_doc_verify(secret, body, signature):
    """CH2: the published HMAC vectors, including Meta's ASCII-escaped unicode body."""
    assert meta.sign(secret, body) == signature
    req = WebhookRequest("POST", {"x-hub-signature-256": signature}, {}, body)
    meta.verify_signature(secret, req)  # does not raise


def test_signature_is_over_raw_bytes_not_decoded_unicode():
    """CH2: hashing the decoded characters gives another signature, so it must be rejected."""
    _, escaped, signature = VECTORS[2]
    decoded = json.dumps(json.loads(escaped), ensure_ascii=False, separators=(",", ":")).encode()
    assert decoded != escaped
    with pytest.raises(WebhookRejected) as exc:
        meta.verify_signature(
            "my_app_secret", WebhookRequest("POST", {"x-hub-signature-256": signature}, {}, decoded)
        )
    assert exc.value.status == 403


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-hub-signature-256": "sha256=" + "0" * 64}, 403),
        ({"x-hub-signature-256": "md5=abc"}, 403),
        ({"x-hub-signature-256": "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"}, 403),
    ],
)
def test_unsigned_or_forged_webhook_is_rejected_and_only_counted(ctx, client, headers, status):
    """CH2: 401/403, nothing stored but a counter."""
    conn = fx.connect(ctx, "whatsapp")
    body = fx.meta_bytes(fx.WA_TEXT)
    r = client.post(
        f"/webhooks/{conn.route_key}", content=body, headers={"content-type": "application/json", **headers}
    )
    assert r.status_code == status
    assert count(ctx, WebhookEvent) == 0 and inbound(ctx) == 0 and count(ctx, Contact) == 0
    with ctx.db.read() as s:
        assert s.get(Counter, "webhook_rejected:whatsapp").value == 1


def test_signature_with_another_apps_secret_is_rejected(ctx):
    """CH2: a body signed with a different secret never reaches the parser."""
    conn = fx.connect(ctx, "whatsapp")
    body = fx.meta_bytes(fx.WA_TEXT)
    assert post(ctx, conn, body, fx.signed(body, "someone-elses-secret")).status == 403
    assert inbound(ctx) == 0


def test_account_without_app_secret_rejects_everything():
    """CH2: reject by default; a missing secret is not a free pass."""
    body = b"{}"
    req = WebhookRequest("POST", {"x-hub-signature-256": meta.sign("", body)}, {}, body)
    with pytest.raises(WebhookRejected):
        ADAPTER.verify(AccountConfig(1, "whatsapp"), req)


# --- handshake ------------------------------------------------------------------------------


def test_hub_challenge_handshake_echoes_challenge_with_the_right_token(ctx, client):
    """CH2: GET hub.mode=subscribe with our verify token → 200 and the challenge as the body."""
    conn = fx.connect(ctx, "whatsapp")
    q = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": fx.VERIFY_TOKEN}
    r = client.get(f"/webhooks/{conn.route_key}", params=q)
    assert r.status_code == 200 and r.text == "1158201444"
    assert (
        client.get(f"/webhooks/{conn.route_key}", params={**q, "hub.verify_token": "nope"}).status_code == 403
    )
    assert (
        client.get(f"/webhooks/{conn.route_key}", params={**q, "hub.mode": "unsubscribe"}).status_code == 403
    )
    assert client.get(f"/webhooks/{conn.route_key}").status_code == 403


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(fx.WHATSAPP_WEBHOOKS))
def test_every_documented_payload_parses(name):
    """CH2: each fixture from whatsapp-cloud.md §4 yields at least one event and no error."""
    events = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WHATSAPP_WEBHOOKS[name]))
    assert events
    for ev in events:
        assert getattr(ev, "account_ref", "x") is not None


def test_text_button_list_and_template_replies_become_messages_with_payloads():
    """CH2: text, interactive button/list replies and template quick replies."""
    [text] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_TEXT))
    assert isinstance(text, InboundMessage)
    assert (text.address, text.text, text.kind, text.profile_name) == (
        "+16505551234", "Does it come in another color?", "text", "Sheena Nelson")  # fmt: skip
    assert text.account_ref == "106540352242922"
    [button] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_BUTTON_REPLY))
    assert (button.kind, button.payload, button.text) == ("button", "cancel-button", "Cancel")
    [row] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_LIST_REPLY))
    assert (row.kind, row.payload) == ("button", "priority_express")
    [quick] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_TEMPLATE_BUTTON_BSUID))
    assert (quick.kind, quick.payload, quick.text) == ("button", "callback_data", "title")
    assert quick.user_id == "US.13491208655302741918"


def test_media_message_keeps_a_reference_and_caption():
    """CH2: media is kept as the provider's media id (fetched on demand), caption as text."""
    payload = copy.deepcopy(fx.WA_TEXT)
    m = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del m["text"]
    m.update(type="image", image={"id": "1479537139650973", "mime_type": "image/jpeg", "caption": "Look"})
    [ev] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(payload))
    assert (ev.kind, ev.media_ref, ev.text) == ("media", "1479537139650973", "Look")


def test_statuses_carry_their_error_code_and_title():
    """CH4: failed statuses name the code; 131050 also withdraws marketing."""
    [failed] = ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_STATUS_FAILED_131047))
    assert isinstance(failed, StatusUpdate)
    assert (failed.status, failed.error_code, failed.error_title) == (
        "failed",
        "131047",
        "Re-engagement message",
    )
    payload = copy.deepcopy(fx.WA_STATUS_FAILED_131047)
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"] = 131050
    events = ADAPTER.parse(ACCOUNT, fx.meta_bytes(payload))
    assert [type(e) for e in events] == [StatusUpdate, MarketingPreference]
    assert events[1].stop is True


def test_system_errors_unsupported_types_and_unknown_fields_are_unknown_events():
    """CH2: stored/ignored, never an error (so Meta does not retry forever)."""
    assert [e.kind for e in ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_SYSTEM_ERROR))] == ["error:130429"]
    assert isinstance(ADAPTER.parse(ACCOUNT, fx.meta_bytes(fx.WA_UNSUPPORTED))[0], UnknownEvent)
    payload = copy.deepcopy(fx.WA_TEXT)
    payload["entry"][0]["changes"][0]["field"] = "message_template_status_update"
    assert [e.kind for e in ADAPTER.parse(ACCOUNT, fx.meta_bytes(payload))] == [
        "field:message_template_status_update"
    ]


def test_multi_entry_batch_yields_every_event():
    """CH2: every entry, change, message and status of a batch counts, not only the first."""
    parts = [
        fx.WA_TEXT,
        fx.WA_BUTTON_REPLY,
        fx.WA_STATUS_SENT,
        fx.WA_STATUS_DELIVERED,
        fx.WA_USER_PREFERENCE_STOP,
    ]
    batch = {"object": "whatsapp_business_account", "entry": []}
    for p in parts:
        batch["entry"].extend(copy.deepcopy(p["entry"]))
    # and one entry with two changes, one change with two messages
    two = copy.deepcopy(fx.WA_TEXT["entry"][0])
    second = copy.deepcopy(two["changes"][0])
    second["value"]["messages"][0]["id"] = "wamid.second"
    second["value"]["messages"].append({**second["value"]["messages"][0], "id": "wamid.third"})
    two["changes"].append(second)
    batch["entry"].append(two)
    events = ADAPTER.parse(ACCOUNT, fx.meta_bytes(batch))
    assert len(events) == 5 + 3
    assert sum(isinstance(e, InboundMessage) for e in events) == 5


def test_a_thousand_updates_in_one_delivery_are_all_stored(ctx):
    """CH2: Meta batches up to 1,000 updates; each is handled once."""
    conn = fx.connect(ctx, "whatsapp")
    change = copy.deepcopy(fx.WA_STATUS_SENT["entry"][0]["changes"][0])
    template = change["value"]["statuses"][0]
    change["value"]["statuses"] = [{**template, "id": f"wamid.batch{i}"} for i in range(1000)]
    batch = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    result = post(ctx, conn, batch)
    assert (result.status, result.events) == (200, 1000)
    assert count(ctx, WebhookEvent) == 1000


def test_another_numbers_events_are_not_taken_as_ours(ctx):
    """A Meta app posts every number's events to one URL: a foreign phone_number_id is ignored."""
    conn = fx.connect(ctx, "whatsapp")
    payload = copy.deepcopy(fx.WA_TEXT)
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999999999"
    assert post(ctx, conn, payload).status == 200
    assert inbound(ctx) == 0


# --- through the store -----------------------------------------------------------------------


def test_duplicate_delivery_stores_one_message(ctx):
    """Invariant 6: Meta retries; the same wamid twice is one message."""
    conn = fx.connect(ctx, "whatsapp")
    first, again = post(ctx, conn, fx.WA_TEXT), post(ctx, conn, fx.WA_TEXT)
    assert (first.events, first.duplicates, again.events, again.duplicates) == (1, 0, 0, 1)
    assert inbound(ctx) == 1 and count(ctx, Contact) == 1


def _text_from(wa_id: str | None, bsuid: str | None, wamid: str) -> dict:
    payload = copy.deepcopy(fx.WA_TEXT)
    value = payload["entry"][0]["changes"][0]["value"]
    contact, msg = value["contacts"][0], value["messages"][0]
    msg["id"] = wamid
    for d in (contact, msg):
        d.pop("wa_id", None)
        d.pop("from", None)
    if wa_id:
        contact["wa_id"] = msg["from"] = wa_id
    if bsuid:
        contact["user_id"] = msg["from_user_id"] = bsuid
    return payload


def test_contact_known_by_number_is_found_again_by_bsuid_alone(ctx):
    """CH2: since 2026 the number can be missing; the BSUID finds the same contact."""
    conn = fx.connect(ctx, "whatsapp")
    post(ctx, conn, _text_from("4915112345678", "DE.1349120865530274", "wamid.a"))
    post(ctx, conn, _text_from(None, "DE.1349120865530274", "wamid.b"))
    post(ctx, conn, _text_from("4915112345678", None, "wamid.c"))
    assert count(ctx, Contact) == 1 and count(ctx, ContactIdentity) == 1 and inbound(ctx) == 3


def test_bsuid_only_contact_is_found_again_when_the_number_appears(ctx):
    """CH2: first seen without a number, later with one: still one contact."""
    conn = fx.connect(ctx, "whatsapp")
    post(ctx, conn, _text_from(None, "US.13491208655302741918", "wamid.a"))
    post(ctx, conn, _text_from("16505551234", "US.13491208655302741918", "wamid.b"))
    post(ctx, conn, _text_from(None, "US.13491208655302741918", "wamid.c"))
    assert count(ctx, Contact) == 1 and inbound(ctx) == 3


def test_user_preferences_stop_withdraws_marketing(ctx):
    """C4: WhatsApp's 'stop marketing messages' setting withdraws every marketing purpose."""
    conn = fx.connect(ctx, "whatsapp")
    pending = fx.request_code(ctx, conn, ["angebote", "produktnews"])
    post(ctx, conn, _with_text(fx.WA_TEXT, pending.prefill))
    with ctx.db.read() as s:
        assert {c.status for c in s.scalars(select(Consent))} == {"active"}
    result = post(ctx, conn, fx.WA_USER_PREFERENCE_STOP)
    assert (result.status, result.events) == (200, 1)
    with ctx.db.read() as s:
        assert {c.status for c in s.scalars(select(Consent))} == {"withdrawn"}
    post(ctx, conn, fx.WA_USER_PREFERENCE_RESUME)
    with ctx.db.read() as s:  # resume restores nothing by itself: consent needs a new opt-in
        assert {c.status for c in s.scalars(select(Consent))} == {"withdrawn"}


def _with_text(payload: dict, text: str) -> dict:
    out = copy.deepcopy(payload)
    out["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = text
    return out


# --- bad input -------------------------------------------------------------------------------


def test_malformed_json_with_valid_signature_is_400_and_stores_nothing(ctx, client):
    conn = fx.connect(ctx, "whatsapp")
    for body in (b"{not json", b"[1,2]", b'{"object":"whatsapp_business_account","entry":{}}', b"\xff\xfe"):
        r = client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body))
        assert r.status_code == 400, body
    assert count(ctx, WebhookEvent) == 0


def test_wrong_content_type_is_refused(ctx, client):
    conn = fx.connect(ctx, "whatsapp")
    body = fx.meta_bytes(fx.WA_TEXT)
    headers = {**fx.signed(body), "content-type": "text/plain"}
    r = client.post(f"/webhooks/{conn.route_key}", content=body, headers=headers)
    assert (r.status_code, r.text) == (415, "Rejected")
    assert inbound(ctx) == 0


def test_body_over_the_limit_is_413(ctx, client):
    conn = fx.connect(ctx, "whatsapp")
    body = b'{"object":"whatsapp_business_account","entry":[],"pad":"' + b"x" * 1_100_000 + b'"}'
    assert (
        client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code == 413
    )


def test_unknown_event_type_is_acknowledged_with_200(ctx, client):
    conn = fx.connect(ctx, "whatsapp")
    payload = copy.deepcopy(fx.WA_TEXT)
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = "hologram"
    body = fx.meta_bytes(payload)
    assert (
        client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code == 200
    )
    assert inbound(ctx) == 0


def test_unknown_route_key_is_404_revealing_no_tenant(ctx, client):
    fx.connect(ctx, "whatsapp")
    body = fx.meta_bytes(fx.WA_TEXT)
    r = client.post("/webhooks/no-such-key", content=body, headers=fx.signed(body))
    assert r.status_code == 404 and "demo" not in r.text.lower()


# --- capabilities, links, setup --------------------------------------------------------------


def test_wa_me_link_carries_the_prefilled_code():
    """C2: wa.me/<digits>?text=<urlencoded prefill>."""
    acc = AccountConfig(1, "whatsapp", settings={"display_phone_number": "+49 30 123-456"})
    link = ADAPTER.deep_link(acc, "KS0123456789", "Hi Demo GmbH, code KS0123456789 & more")
    assert link == "https://wa.me/4930123456?text=Hi%20Demo%20GmbH%2C%20code%20KS0123456789%20%26%20more"


def test_capabilities_and_setup_fields_are_data():
    """CH1, S7: the 24-hour window, templates and limits are declared, and where data goes."""
    caps = ADAPTER.capabilities
    assert (caps.service_window_hours, caps.templates, caps.max_buttons, caps.max_text_len) == (
        24,
        True,
        3,
        4096,
    )
    assert caps.throughput_per_s == 80 and caps.per_contact_interval_s == 6
    assert "Ireland" in caps.processing_region and "Data Privacy Framework" in caps.safeguard
    secret = {f.name for f in ADAPTER.setup_fields if f.secret}
    assert secret == {"access_token", "app_secret", "verify_token"}
