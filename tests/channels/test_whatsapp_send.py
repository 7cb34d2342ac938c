# ruff: noqa: F811, E501
"""WhatsApp against the local Cloud API fake: consent-core flows, send bodies, error mapping (CH3, CH4, C2, C4)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from konsent.channels import meta
from konsent.channels.base import Button, OutboundContent, SendOutcome
from konsent.channels.whatsapp import WhatsAppCloudChannel
from konsent.domain.errors import WindowClosed
from konsent.flows.outbound.messaging import enqueue_message
from konsent.store.tables import Consent, Contact, Message
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.conftest import drain

USER = "4915112345678"


def out_messages(ctx) -> list[Message]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return list(s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)))


def consents(ctx) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return {c.purpose: c.status for c in s.scalars(select(Consent))}


def opt_in(ctx, client, fake, conn, topics=("angebote",)):  # type: ignore[no-untyped-def]
    pending = fx.request_code(ctx, conn, list(topics))
    fake.user_text(fx.WA_PHONE_ID, USER, pending.prefill)
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    return pending


def test_opt_in_by_wa_me_code_confirms_and_the_reply_reaches_the_provider(ctx, client, fake):
    """C2, CH3, CH4: wa.me link with the code → consent; confirmation sent to the fake; statuses to read."""
    conn = fx.connect(ctx, "whatsapp", fake)
    pending = fx.request_code(ctx, conn, ["angebote"])
    assert pending.deep_link.startswith(f"https://wa.me/{fx.WA_DISPLAY}?text=")
    assert pending.code in pending.deep_link
    fake.user_text(fx.WA_PHONE_ID, USER, pending.prefill)
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    assert consents(ctx) == {"newsletter:angebote": "active"}
    drain(ctx)
    [sent] = fake.accepted
    body = sent["body"]
    assert (body["messaging_product"], body["recipient_type"], body["to"], body["type"]) == (
        "whatsapp", "individual", "+" + USER, "text")  # fmt: skip
    assert "Offers" in body["text"]["body"]
    [msg] = out_messages(ctx)
    assert (msg.status, msg.provider_id) == ("sent", sent["id"])
    statuses = fake.wait_outgoing(3)
    assert [d.json()["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] for d in statuses] == [
        "sent", "delivered", "read"]  # fmt: skip
    assert fx.deliver(client, conn, statuses) == [200, 200, 200]
    assert out_messages(ctx)[0].status == "read"


def test_status_webhooks_are_signed_exactly_like_meta(ctx, client, fake):
    """CH2: the fake signs the ASCII-escaped bytes; konsent verifies those bytes."""
    conn = fx.connect(ctx, "whatsapp", fake)
    d = fake.user_text(fx.WA_PHONE_ID, USER, "Grüße äöå")
    fake.take_outgoing()
    assert d.body.isascii() and b"\\u00e4" in d.body
    assert d.headers["x-hub-signature-256"] == meta.sign(fx.APP_SECRET, d.body)
    assert fx.deliver(client, conn, [d]) == [200]


def test_stop_withdraws_cancels_queued_marketing_and_confirms(ctx, client, fake):
    """C4, invariant 2: STOP by WhatsApp withdraws; the answer reaches the provider."""
    conn = fx.connect(ctx, "whatsapp", fake)
    opt_in(ctx, client, fake, conn, ["angebote", "produktnews"])
    drain(ctx)
    with ctx.db.write() as s:
        contact = s.scalars(select(Contact)).one()
        enqueue_message(ctx, s, contact, "newsletter:angebote", OutboundContent(text="Sale!"))
    fake.take_outgoing()  # the status webhooks of the confirmation do not matter here
    fake.user_text(fx.WA_PHONE_ID, USER, "STOP")
    stop = fake.take_outgoing()
    assert fx.deliver(client, conn, stop) == [200]
    assert set(consents(ctx).values()) == {"withdrawn"}
    assert [m.status for m in out_messages(ctx)][1] == "cancelled"
    drain(ctx)
    assert len(fake.accepted) == 2  # confirmation and STOP answer, never the newsletter
    assert "Sale!" not in str(fake.accepted)


def test_out_of_order_and_duplicated_statuses_end_as_read(ctx, client, fake):
    """CH4, invariant 6: read before delivered, duplicates: the message ends as read."""
    conn = fx.connect(ctx, "whatsapp", fake)
    opt_in(ctx, client, fake, conn)
    fake.status_flow = ("read", "delivered", "sent")
    fake.duplicate_rate = 1.0
    drain(ctx)
    statuses = fake.wait_outgoing(6)
    assert len(statuses) == 6
    assert fx.deliver(client, conn, statuses) == [200] * 6
    [msg] = out_messages(ctx)
    assert msg.status == "read"


def test_free_text_outside_the_window_is_refused_with_a_reason_templates_pass(ctx, client, fake):
    """CH3: outside 24 h only templates; the refusal says why."""
    conn = fx.connect(ctx, "whatsapp", fake)
    opt_in(ctx, client, fake, conn)
    later = time.time() + 25 * 3600
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(later, UTC)
    with ctx.db.write() as s:
        contact = s.scalars(select(Contact)).one()
        with pytest.raises(WindowClosed) as exc:
            enqueue_message(ctx, s, contact, "newsletter:angebote", OutboundContent(text="Hi"), at=at)
        assert "24-hour window" in str(exc.value)
        enqueue_message(
            ctx, s, contact, "newsletter:angebote",
            OutboundContent(template="weekly_offers", template_language="de", template_params=("Anna",)), at=at,
        )  # fmt: skip


def test_provider_reports_window_closed_later_as_a_failed_status(ctx, client, fake):
    """CH4: WhatsApp accepts, then reports 131047 in a failed status; the message ends failed with it."""
    conn = fx.connect(ctx, "whatsapp", fake)
    opt_in(ctx, client, fake, conn)
    fake.enforce_window = True
    fake.window_opened(fx.WA_PHONE_ID, USER, at=time.time() - 25 * 3600)  # the provider's clock disagrees
    drain(ctx)
    [status] = fake.wait_outgoing(1)
    assert fx.deliver(client, conn, [status]) == [200]
    [msg] = out_messages(ctx)
    assert msg.status == "failed" and "131047" in msg.status_reason


def test_undeliverable_and_marketing_opt_out_statuses_act_on_the_contact(ctx, client, fake):
    """CH3: 131026 → contact unreachable; 131050 → marketing purposes withdrawn."""
    conn = fx.connect(ctx, "whatsapp", fake)
    opt_in(ctx, client, fake, conn)
    drain(ctx)
    fake.take_outgoing()
    [msg] = out_messages(ctx)
    for code in (131050, 131026):
        payload = fx.copy.deepcopy(fx.WA_STATUS_FAILED_131047)
        st = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
        st.update(id=msg.provider_id, recipient_id=USER)
        st["errors"][0]["code"] = code
        body = fx.meta_bytes(payload)
        assert (
            client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code
            == 200
        )
    assert consents(ctx) == {"newsletter:angebote": "withdrawn"}
    with ctx.db.read() as s:
        assert s.scalars(select(Contact)).one().unreachable is True


# --- send bodies, validated by the fake ------------------------------------------------------


def test_buttons_template_and_bsuid_recipient_bodies_are_accepted(fake):
    """CH3: reply buttons (max 3), templates with body variables, `recipient` for BSUID-only contacts."""
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    acc = fx.account_config("whatsapp", fake)
    buttons = OutboundContent(text="Which?", buttons=tuple(Button(f"b{i}", f"Option {i}") for i in range(5)))
    template = OutboundContent(template="order_confirmation", template_language="en_US",
                               template_params=("Jessica", "SKBUP2-4CPIG9"))  # fmt: skip
    results = [
        fx.run_send(WhatsAppCloudChannel(), acc, "+16505551234", buttons),
        fx.run_send(WhatsAppCloudChannel(), acc, "+16505551234", template),
        fx.run_send(WhatsAppCloudChannel(), acc, "US.13491208655302741918", OutboundContent(text="Hi")),
    ]
    assert [r.outcome for r in results] == [SendOutcome.SENT] * 3
    assert all(r.provider_id.startswith("wamid.") for r in results)
    b, t, u = (a["body"] for a in fake.accepted)
    assert len(b["interactive"]["action"]["buttons"]) == 3
    assert t["template"] == fx.WA_SEND_TEMPLATE["template"]  # exactly Meta's documented shape
    assert u["recipient"] == "US.13491208655302741918" and "to" not in u


# --- error mapping -----------------------------------------------------------------------------


def _send(fake, content=None, address="+16505551234", **settings):  # type: ignore[no-untyped-def]
    acc = fx.account_config("whatsapp", fake, **settings)
    return fx.run_send(WhatsAppCloudChannel(), acc, address, content or OutboundContent(text="Hi"))


def test_wrong_token_is_permanent(fake):
    fake.add_phone(fx.WA_PHONE_ID, "another-token", fx.APP_SECRET)
    r = _send(fake)
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "190")


def test_throughput_limit_130429_snoozes(fake):
    """CH3: 80 msg/s per number (here 2) → 130429 → retry after a pause, no attempt spent."""
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    fake.enforce_rate_limits, fake.mps = True, 2
    acc = fx.account_config("whatsapp", fake)
    adapter = WhatsAppCloudChannel()

    async def three():  # type: ignore[no-untyped-def]
        try:
            return [
                await adapter.send(acc, f"+4915100000{i:03d}", OutboundContent(text="x")) for i in range(3)
            ]
        finally:
            await adapter.close()

    results = fx.asyncio.run(three())
    assert [r.outcome for r in results] == [SendOutcome.SENT, SendOutcome.SENT, SendOutcome.RETRY_AFTER]
    assert results[2].error_code == "130429" and results[2].retry_after_s == 1.0


def test_pair_limit_131056_snoozes_after_the_burst(fake):
    """CH3: 1 msg / 6 s to one user with a 45-message burst → 131056."""
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    fake.enforce_rate_limits, fake.mps = True, 1000
    acc = fx.account_config("whatsapp", fake)
    adapter = WhatsAppCloudChannel()

    async def burst():  # type: ignore[no-untyped-def]
        try:
            return [await adapter.send(acc, "+16505551234", OutboundContent(text="x")) for _ in range(46)]
        finally:
            await adapter.close()

    results = fx.asyncio.run(burst())
    assert [r.outcome for r in results[:45]] == [SendOutcome.SENT] * 45
    assert (results[45].outcome, results[45].error_code, results[45].retry_after_s) == (
        SendOutcome.RETRY_AFTER, "131056", 6.0)  # fmt: skip


def test_unknown_template_is_permanent(fake):
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    fake.templates = {("weekly_offers", "de")}
    r = _send(fake, OutboundContent(template="nope", template_language="de"))
    assert (r.outcome, r.error_code) == (SendOutcome.PERMANENT, "132001")


@pytest.mark.parametrize(
    ("faults", "outcome", "code"),
    [
        ({"rate_429": 1.0, "retry_after_s": 7}, SendOutcome.RETRY_AFTER, "4"),
        ({"rate_5xx": 1.0}, SendOutcome.TRANSIENT, "1"),
        ({"rate_timeout": 1.0, "hang_s": 1.5}, SendOutcome.UNKNOWN, "no_answer"),
        ({"rate_reset": 1.0}, SendOutcome.UNKNOWN, "no_answer"),
        ({"rate_slow": 1.0, "slow_s": 0.1}, SendOutcome.SENT, None),
    ],
)
def test_injected_faults_map_to_outcomes(faults, outcome, code):
    """CH3: 429 with Retry-After, 5xx, timeout after the request went out, reset, slow answers."""
    from tests.fakes.meta_fake import Faults, MetaFake

    with MetaFake(faults=Faults(**faults), max_lifetime_s=30) as f:
        f.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
        r = _send(f, timeout_s=0.5)
    assert (r.outcome, r.error_code) == (outcome, code)
    if outcome is SendOutcome.RETRY_AFTER:
        assert r.retry_after_s == 7.0


def test_connection_refused_is_transient_nothing_went_out(ctx):
    """CH3: the provider was never reached, so a retry cannot duplicate."""
    acc = fx.account_config("whatsapp", type("F", (), {"url": "http://127.0.0.1:9"})())
    r = fx.run_send(WhatsAppCloudChannel(), acc, "+16505551234", OutboundContent(text="Hi"))
    assert (r.outcome, r.error_code) == (SendOutcome.TRANSIENT, "connect")


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (400, {"error": {"code": 131047, "message": "Re-engagement message"}}, SendOutcome.WINDOW_CLOSED),
        (400, {"error": {"code": 131026, "message": "Message undeliverable"}}, SendOutcome.UNREACHABLE),
        (400, {"error": {"code": 131050, "message": "stopped marketing"}}, SendOutcome.MARKETING_OPT_OUT),
        (400, {"error": {"code": 130429, "message": "Rate limit hit"}}, SendOutcome.RETRY_AFTER),
        (400, {"error": {"code": 131056, "message": "pair rate limit"}}, SendOutcome.RETRY_AFTER),
        (429, {"error": {"code": 80007, "message": "WABA rate limit"}}, SendOutcome.RETRY_AFTER),
        (429, None, SendOutcome.RETRY_AFTER),
        # Messenger's 10/2018278 and 551 are in Messenger's own table now (test_error_tables_documented.py)
        (400, {"error": {"code": 131000, "message": "Something went wrong"}}, SendOutcome.TRANSIENT),
        (503, {"error": {"code": 131016, "message": "Service unavailable"}}, SendOutcome.TRANSIENT),
        (502, None, SendOutcome.TRANSIENT),
        (400, fx.GRAPH_ERROR, SendOutcome.PERMANENT),
        (401, {"error": fx.GRAPH_ERROR_EXPIRED_TOKEN}, SendOutcome.PERMANENT),
        (
            400,
            {"error": {"code": 132001, "message": "(#132001) Template name does not exist"}},
            SendOutcome.PERMANENT,
        ),
        (401, fx.D360_ERROR_API_KEY, SendOutcome.PERMANENT),
        (403, fx.D360_ERROR_BLOCKED, SendOutcome.PERMANENT),
    ],
)
def test_graph_errors_map_by_documented_meaning(status, body, outcome):
    """CH3: 429/130429/131056 snooze; 131047 window; 131026 unreachable; 131050 opt-out; rest permanent/transient."""
    assert meta.map_graph_error(status, body, {"Retry-After": "3"}).outcome is outcome


def test_retry_after_header_wins_over_the_default():
    r = meta.map_graph_error(429, {"error": {"code": 4}}, {"Retry-After": "42"})
    assert r.retry_after_s == 42.0
    assert meta.map_graph_error(400, {"error": {"code": 131056}}, {}).retry_after_s == 6.0


def test_many_sends_under_mixed_faults_never_raise(fake):
    """CH3: under 429s, 5xx, resets and slow answers every send returns a mapped outcome."""
    from tests.fakes.meta_fake import Faults

    fake.faults = Faults(rate_429=0.2, rate_5xx=0.2, rate_reset=0.1, rate_slow=0.1, slow_s=0.01, seed=7)
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    acc = fx.account_config("whatsapp", fake)
    adapter = WhatsAppCloudChannel()

    async def many():  # type: ignore[no-untyped-def]
        try:
            return await fx.asyncio.gather(
                *(adapter.send(acc, f"+49151{i:07d}", OutboundContent(text="x")) for i in range(60))
            )
        finally:
            await adapter.close()

    results = fx.asyncio.run(many())
    seen = {r.outcome for r in results}
    assert SendOutcome.SENT in seen and SendOutcome.RETRY_AFTER in seen and SendOutcome.TRANSIENT in seen
    assert seen <= {SendOutcome.SENT, SendOutcome.RETRY_AFTER, SendOutcome.TRANSIENT, SendOutcome.UNKNOWN}
    assert sum(r.outcome is SendOutcome.SENT for r in results) == len(fake.accepted)


# --- real HTTP both ways ---------------------------------------------------------------------


def test_status_webhooks_over_real_http_reach_konsent(ctx, fake):
    """CH4 end to end: the fake POSTs signed webhooks to konsent's webhook URL over HTTP."""
    import socket

    import uvicorn

    from konsent.web.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        conn = fx.connect(ctx, "whatsapp", fake)
        fake.phones[fx.WA_PHONE_ID].callback_url = f"http://127.0.0.1:{port}/webhooks/{conn.route_key}"
        fake.shuffle_statuses = True  # posted concurrently and in any order, as Meta may

        pending = fx.request_code(ctx, conn, ["angebote"])
        fake.user_text(fx.WA_PHONE_ID, USER, pending.prefill)
        deadline = time.monotonic() + 10
        while consents(ctx) != {"newsletter:angebote": "active"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert consents(ctx) == {"newsletter:angebote": "active"}
        # Statuses are held until the send is recorded: one overtaking the worker's commit is
        # the early-status path (flows/status_sink), not what this test is about.
        fake.hold_webhooks = True
        drain(ctx)
        assert fake.release_webhooks() == 3
        deadline = time.monotonic() + 15
        while out_messages(ctx)[0].status != "read" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out_messages(ctx)[0].status == "read"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- the fake is faithful: documented requests pass, broken ones get the documented error -------


def _raw(fake, body, headers=None, path=None):  # type: ignore[no-untyped-def]
    import json as _json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        fake.url + (path or f"/v21.0/{fx.WA_PHONE_ID}/messages"),
        data=_json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            **(headers or {"Authorization": "Bearer EAAJB-test-token"}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, _json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json.loads(exc.read())


def test_fake_accepts_every_documented_send_example(fake):
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    examples = [
        fx.WA_SEND_TEXT,
        fx.WA_SEND_BUTTONS,
        fx.WA_SEND_TEMPLATE,
        fx.WA_SEND_TEMPLATE_NAMED,
        fx.D360_SEND_TEMPLATE,
    ]
    full_template = {
        **fx.WA_SEND_TEMPLATE,
        "template": {**fx.WA_TEMPLATE_OBJECT, "name": "order_confirmation"},
    }
    for body in [*examples, full_template]:
        status, answer = _raw(fake, body)
        assert status == 200, answer
        assert set(answer) == set(fx.WA_SEND_RESPONSE) and answer["messages"][0]["id"].startswith("wamid.")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"surprise": 1}, 100),
        ({"messaging_product": None}, 100),
        ({"to": "not-a-number"}, 131009),
        ({"type": "hologram"}, 131051),
        ({"text": {"body": ""}}, 100),
        ({"text": {"body": "x" * 4097}}, 100),
    ],
)
def test_fake_rejects_broken_bodies_with_graph_errors(fake, change, code):
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    body = {k: v for k, v in {**fx.WA_SEND_TEXT, **change}.items() if v is not None}
    status, answer = _raw(fake, body)
    assert status == 400 and answer["error"]["code"] == code and answer["error"]["fbtrace_id"]


def test_fake_enforces_auth_per_door(fake):
    fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    assert _raw(fake, fx.WA_SEND_TEXT, {"Authorization": "Bearer wrong"})[0] == 401
    status, answer = _raw(fake, fx.WA_SEND_TEXT, {"D360-API-KEY": "nope"}, path="/d360/messages")
    assert status == 401 and answer["meta"]["success"] is False
    four = {**fx.WA_SEND_BUTTONS, "interactive": fx.copy.deepcopy(fx.WA_SEND_BUTTONS["interactive"])}
    four["interactive"]["action"]["buttons"] *= 2
    assert _raw(fake, four)[1]["error"]["code"] == 131009


def test_rate_limited_reply_is_snoozed_then_delivered_once(ctx, client, fake):
    """CH3, invariant 6: a 429 snoozes the outbox row until Retry-After; then exactly one send."""
    from tests.fakes.meta_fake import Faults

    conn = fx.connect(ctx, "whatsapp", fake)
    fake.faults = Faults(rate_429=1.0, retry_after_s=1)
    opt_in(ctx, client, fake, conn)
    drain(ctx)
    assert fake.accepted == [] and out_messages(ctx)[0].status in ("queued", "retrying")
    fake.faults = Faults()
    drain(ctx)
    assert fake.accepted == []  # not before Retry-After
    with time_machine.travel(timedelta(seconds=1.1), tick=True):
        drain(ctx)
    assert len(fake.accepted) == 1 and out_messages(ctx)[0].status == "sent"


@pytest.mark.parametrize("kind", ["whatsapp", "dialog360"])
def test_media_is_fetched_on_demand_by_its_reference(fake, kind):
    """CH2: inbound media is kept as Meta's media id and downloaded only when opened."""
    from konsent.channels.whatsapp import Dialog360Channel

    if kind == "whatsapp":
        fake.add_phone(fx.WA_PHONE_ID, "EAAJB-test-token", fx.APP_SECRET)
    else:
        fake.add_phone(fx.WA_PHONE_ID, "", "", d360_key="d360-key-abc")
    fake.media["1479537139650973"] = (b"\xff\xd8jpeg bytes", "image/jpeg")
    adapter = WhatsAppCloudChannel() if kind == "whatsapp" else Dialog360Channel()
    acc = fx.account_config(kind, fake)

    async def fetch(ref):  # type: ignore[no-untyped-def]
        try:
            return await adapter.fetch_media(acc, ref)
        finally:
            await adapter.close()

    assert fx.asyncio.run(fetch("1479537139650973")) == (b"\xff\xd8jpeg bytes", "image/jpeg")
    assert fx.asyncio.run(fetch("404404404")) is None


def test_media_download_never_sends_the_token_to_a_foreign_host():
    """The bearer token only goes to Meta's media hosts or the configured API origin."""
    adapter = WhatsAppCloudChannel()
    acc = fx.account_config("whatsapp", type("F", (), {"url": "http://127.0.0.1:9"})())
    assert adapter._download_url(acc, "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
    assert adapter._download_url(acc, "http://127.0.0.1:9/media-download/1")
    assert adapter._download_url(acc, "https://evil.example/steal") is None
    assert adapter._download_url(acc, "http://lookaside.fbsbx.com/plain-http") is None
