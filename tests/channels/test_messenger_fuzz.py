# ruff: noqa: E501
"""Property test: random mutations of every Messenger/Instagram fixture never 500, never write unsigned (CH2)."""

from __future__ import annotations

import random
import time

from sqlalchemy import func, select

from konsent.channels.base import AccountConfig, WebhookRequest
from konsent.channels.messenger import InstagramChannel, MessengerChannel
from konsent.flows.inbound.receive import receive_webhook
from konsent.store.tables import Message, WebhookEvent
from tests.channels import fixtures_meta as fx

N = 10_000
ALLOWED = (ValueError, KeyError, TypeError)
PAGE_FIXTURES = sorted(fx.MESSENGER_WEBHOOKS.items())
IG_FIXTURES = sorted(fx.INSTAGRAM_WEBHOOKS.items())


def test_ten_thousand_mutations_parse_or_fail_cleanly():
    """CH2: Messenger and Instagram payloads, mutated, give well-formed events or a clean 400."""
    rng = random.Random(4711)
    _, secrets_ = fx.account_values("messenger")
    acc = AccountConfig(1, "messenger", settings={}, secrets=secrets_)
    started = time.monotonic()
    parsed = rejected = 0
    for i in range(N):
        adapter, fixtures = (
            (MessengerChannel(), PAGE_FIXTURES) if i % 2 else (InstagramChannel(), IG_FIXTURES)
        )
        _, payload = fixtures[i % len(fixtures)]
        body = (
            fx.meta_bytes(fx.mutate(payload, rng)) if i % 10 else fx.mutate_bytes(fx.meta_bytes(payload), rng)
        )
        adapter.verify(acc, WebhookRequest("POST", fx.signed(body), {}, body))
        try:
            fx.check_events(adapter.parse(acc, body))
            parsed += 1
        except ALLOWED:
            rejected += 1
    assert time.monotonic() - started < 20
    assert parsed > N // 4 and rejected > N // 20


def test_mutations_through_the_inbound_flow_never_500_and_unsigned_never_write(ctx, client):
    """CH2: signed mutations → 200/400; tampered bytes → 401/403 and nothing stored."""
    rng = random.Random(11)
    conn = fx.connect(ctx, "messenger")

    def rows() -> tuple[int, int]:
        with ctx.db.read() as s:
            return (
                int(s.scalar(select(func.count()).select_from(WebhookEvent)) or 0),
                int(s.scalar(select(func.count()).select_from(Message)) or 0),
            )

    for i in range(240):
        _, payload = PAGE_FIXTURES[i % len(PAGE_FIXTURES)]
        payload = fx.copy.deepcopy(payload)
        payload["entry"][0]["id"] = fx.PAGE_ID
        body = fx.meta_bytes(fx.mutate(payload, rng))
        if i % 3 == 0:
            before = rows()
            tampered = fx.mutate_bytes(body, rng)
            headers = fx.signed(body) if tampered != body else fx.signed(body, "forged")
            result = receive_webhook(ctx, conn.route_key, WebhookRequest("POST", headers, {}, tampered))
            assert result.status in (401, 403)
            assert rows() == before
        elif i % 8 == 1:  # a few over real HTTP
            r = client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body))
            assert r.status_code in (200, 400)
        else:
            result = receive_webhook(ctx, conn.route_key, WebhookRequest("POST", fx.signed(body), {}, body))
            assert result.status in (200, 400)
