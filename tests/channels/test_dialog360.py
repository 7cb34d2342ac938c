# ruff: noqa: F811
"""WhatsApp through 360dialog: Meta's payloads, 360dialog's key, URL and webhook header (CH1-CH4)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.channels.base import AccountConfig, OutboundContent, SendOutcome, WebhookRejected, WebhookRequest
from konsent.channels.whatsapp import Dialog360Channel
from konsent.store.tables import Consent, Counter, Message, WebhookEvent
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain

USER = "4917612345678"
ADAPTER = Dialog360Channel()


def header(value: str = "d360-shared-secret-xyz") -> dict[str, str]:
    return {"content-type": "application/json", fx.D360_HEADER: value}


def test_webhook_header_is_checked_in_constant_time_and_rejects_by_default():
    """CH2: the custom header registered with 360dialog; missing → 401, wrong → 403, unset secret → 403."""
    settings, secrets_ = fx.account_values("dialog360")
    acc = AccountConfig(1, "dialog360", settings=settings, secrets=secrets_)
    body = fx.meta_bytes(fx.D360_STATUS_DELIVERED)
    ADAPTER.verify(acc, WebhookRequest("POST", header(), {}, body))
    for headers, status in ((header("wrong"), 403), ({"content-type": "application/json"}, 401)):
        with pytest.raises(WebhookRejected) as exc:
            ADAPTER.verify(acc, WebhookRequest("POST", headers, {}, body))
        assert exc.value.status == status
    with pytest.raises(WebhookRejected):
        ADAPTER.verify(
            AccountConfig(1, "dialog360", settings=settings), WebhookRequest("POST", header(""), {}, body)
        )


def test_a_meta_signature_is_no_substitute_for_the_header(ctx, client):
    """CH2: 360dialog re-posts with its own app secret; only our header counts. Nothing stored, counted."""
    conn = fx.connect(ctx, "dialog360")
    body = fx.meta_bytes(fx.WA_TEXT)
    r = client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body))
    assert r.status_code == 401
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        assert s.get(Counter, "webhook_rejected:dialog360").value == 1


def test_every_documented_payload_parses_through_the_endpoint(ctx, client):
    """CH2: the same fixtures as Meta's plus 360dialog's own status example; all answered 200."""
    conn = fx.connect(ctx, "dialog360")
    for name, payload in sorted(fx.DIALOG360_WEBHOOKS.items()):
        body = fx.meta_bytes(payload)
        assert (
            client.post(f"/webhooks/{conn.route_key}", content=body, headers=header()).status_code == 200
        ), name
    with ctx.db.read() as s:  # the inbound texts and button taps of the fixtures were stored
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) >= 5


def test_register_webhook_then_opt_in_stop_and_statuses_against_the_fake(ctx, client, fake):
    """C2, C4, CH3, CH4: register our URL+header at the fake, opt in by code, reply, statuses, STOP."""
    conn = fx.connect(ctx, "dialog360", fake)
    fake.phones[fx.WA_PHONE_ID].d360_headers = {}
    with ctx.db.read() as s:
        from konsent.flows.organisation.tenants import account_config, get_account

        cfg = account_config(ctx, s, get_account(s, conn.tenant_id, conn.account_id))
    url = f"https://konsent.example/webhooks/{conn.route_key}"
    assert fx.asyncio.run(_register(cfg, url)).ok
    assert fake.phones[fx.WA_PHONE_ID].d360_headers == {fx.D360_HEADER: "d360-shared-secret-xyz"}
    fake.phones[fx.WA_PHONE_ID].callback_url = None  # the test hands the webhooks over itself
    pending = fx.request_code(ctx, conn, ["angebote"])
    assert pending.deep_link.startswith(f"https://wa.me/{fx.WA_DISPLAY}?text=")
    fake.user_text(fx.WA_PHONE_ID, USER, pending.prefill)
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    drain(ctx)
    [sent] = fake.accepted
    assert sent["body"]["to"] == "+" + USER and sent["body"]["type"] == "text"
    assert fx.deliver(client, conn, fake.wait_outgoing(3)) == [200, 200, 200]
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.direction == "out")).one().status == "read"
    fake.user_text(fx.WA_PHONE_ID, USER, "STOP")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    with ctx.db.read() as s:
        assert {c.status for c in s.scalars(select(Consent))} == {"withdrawn"}


async def _register(cfg, url):  # type: ignore[no-untyped-def]
    adapter = Dialog360Channel()
    try:
        return await adapter.register_webhook(cfg, url)
    finally:
        await adapter.close()


def test_send_uses_the_api_key_and_no_phone_number_id_in_the_path(fake):
    """CH3: POST {base}/messages with D360-API-KEY; a wrong key is permanent with 360dialog's envelope."""
    fake.add_phone(fx.WA_PHONE_ID, "", "", d360_key="d360-key-abc")
    acc = fx.account_config("dialog360", fake)
    template = OutboundContent(
        template="order_confirmation", template_language="en_US", template_params=("Maria", "B67890")
    )
    r = fx.run_send(Dialog360Channel(), acc, "15551234567", template)
    assert r.outcome is SendOutcome.SENT and r.provider_id.startswith("wamid.")
    assert fake.accepted[0]["body"]["template"] == fx.D360_SEND_TEMPLATE["template"]
    bad = AccountConfig(1, "dialog360", settings=acc.settings, secrets={**acc.secrets, "api_key": "wrong"})
    r = fx.run_send(Dialog360Channel(), bad, "15551234567", OutboundContent(text="Hi"))
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "d360_401")


def test_capabilities_equal_whatsapp_and_setup_fields_name_the_secrets():
    """CH1, S7: same limits and processing as Meta's Cloud API."""
    from konsent.channels.whatsapp import CAPABILITIES

    assert ADAPTER.capabilities.service_window_hours == CAPABILITIES.service_window_hours == 24
    assert ADAPTER.capabilities.throughput_per_s == CAPABILITIES.throughput_per_s
    assert (
        "360dialog GmbH" in ADAPTER.capabilities.processing_region
        and "USA" in ADAPTER.capabilities.processing_region
    )
    assert {f.name for f in ADAPTER.setup_fields if f.secret} == {
        "api_key",
        "webhook_header_value",
        "verify_token",
    }
