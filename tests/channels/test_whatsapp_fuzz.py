"""Property test: random mutations of every WhatsApp fixture never cause a 500 and never write unsigned (CH2).

10,000 structural mutations go through the adapter's verify + parse (what
receive_webhook runs before touching the store); a sample goes through
flows.inbound.receive_webhook against the database, and a smaller one over HTTP.
"""

from __future__ import annotations

import random
import time

from sqlalchemy import func, select

from konsent.channels.base import AccountConfig, WebhookRequest
from konsent.channels.whatsapp import WhatsAppCloudChannel
from konsent.flows.inbound.receive import receive_webhook
from konsent.store.tables import Contact, Message, WebhookEvent
from tests.channels import fixtures_meta as fx

N = 10_000
ALLOWED = (ValueError, KeyError, TypeError)  # what receive_webhook answers with 400
FIXTURES = sorted(fx.DIALOG360_WEBHOOKS.items())


def _rows(ctx) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return tuple(
            int(s.scalar(select(func.count()).select_from(t)) or 0) for t in (WebhookEvent, Message, Contact)
        )  # type: ignore[return-value]


def test_ten_thousand_mutations_parse_or_fail_cleanly():
    """CH2: every mutation yields well-formed events or a clean 400-class error, fast."""
    rng = random.Random(20261124)
    settings, secrets_ = fx.account_values("whatsapp")
    acc = AccountConfig(1, "whatsapp", settings=settings, secrets=secrets_)
    adapter = WhatsAppCloudChannel()
    started = time.monotonic()
    outcomes = {"events": 0, "rejected": 0}
    for i in range(N):
        _, payload = FIXTURES[i % len(FIXTURES)]
        body = (
            fx.meta_bytes(fx.mutate(payload, rng)) if i % 10 else fx.mutate_bytes(fx.meta_bytes(payload), rng)
        )
        adapter.verify(acc, WebhookRequest("POST", fx.signed(body), {}, body))
        try:
            events = adapter.parse(acc, body)
        except ALLOWED:
            outcomes["rejected"] += 1
            continue
        fx.check_events(events)
        outcomes["events"] += 1
    assert time.monotonic() - started < 20
    assert outcomes["events"] > N // 4 and outcomes["rejected"] > N // 20  # both paths exercised


def test_mutations_through_the_inbound_flow_never_500_and_unsigned_never_write(ctx):
    """CH2, invariant 6: signed mutations → 200/400; tampered bytes → 401/403 with no row written."""
    rng = random.Random(7)
    conn = fx.connect(ctx, "whatsapp")
    for i in range(300):
        _, payload = FIXTURES[i % len(FIXTURES)]
        body = fx.meta_bytes(fx.mutate(payload, rng))
        if i % 3 == 0:  # signed, then damaged in transit (or forged): must be rejected, nothing stored
            before = _rows(ctx)
            tampered = fx.mutate_bytes(body, rng)
            headers = fx.signed(body) if tampered != body else fx.signed(body, "forged")
            result = receive_webhook(ctx, conn.route_key, WebhookRequest("POST", headers, {}, tampered))
            assert result.status in (401, 403), result
            assert _rows(ctx) == before
        else:
            result = receive_webhook(ctx, conn.route_key, WebhookRequest("POST", fx.signed(body), {}, body))
            assert result.status in (200, 400), result


def test_mutations_for_360dialog_over_http_never_500(ctx, client):
    """CH2: the same through the real endpoint, with 360dialog's header auth."""
    rng = random.Random(360)
    conn = fx.connect(ctx, "dialog360")
    _, secrets_ = fx.account_values("dialog360")
    good = {"content-type": "application/json", fx.D360_HEADER: secrets_["webhook_header_value"]}
    for i in range(60):
        _, payload = FIXTURES[i % len(FIXTURES)]
        body = fx.meta_bytes(fx.mutate(payload, rng))
        headers = good if i % 4 else {**good, fx.D360_HEADER: "x" + secrets_["webhook_header_value"]}
        before = _rows(ctx)
        r = client.post(f"/webhooks/{conn.route_key}", content=body, headers=headers)
        assert r.status_code in ((200, 400) if i % 4 else (403,)), (i, r.status_code)
        if i % 4 == 0:
            assert _rows(ctx) == before
