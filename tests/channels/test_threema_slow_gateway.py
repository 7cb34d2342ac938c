"""A slow Threema key lookup stalls nobody else (#13 finding 6, CH2).

A callback from a sender konsent has no key for needs `GET /pubkeys/{id}` at the gateway.
It used to be synchronous urllib on the event loop (the status fast path parses there),
so every request of every tenant waited for the gateway. Now `parse` never does I/O, the
route awaits the lookup through the shared transport, caches the key, and gives up after
a short timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select

from konsent.channels import threema
from konsent.channels.threema import TYPE_TEXT, generate_private_key, public_key_hex
from konsent.store.tables import WebhookEvent
from tests.channels.fixtures_telegram import add_account, serve_konsent
from tests.fakes.threema_fake import ThreemaFake

GATEWAY = "*KONSENT"
SECRET = "nevergonnagiveyouup"
SLOW_SENDER = "SLOWSLOW"
FORM = {"content-type": "application/x-www-form-urlencoded"}


class SlowGateway(ThreemaFake):
    """The fake gateway, answering key lookups only after `delay_s` (and counting them)."""

    delay_s = 2.5
    lookups = 0
    answered_at = 0.0

    async def _pubkeys(self, request: web.Request) -> web.Response:
        type(self).lookups += 1
        await asyncio.sleep(self.delay_s)
        type(self).answered_at = time.monotonic()
        return await super()._pubkeys(request)


@pytest.fixture
def slow(ctx, demo, monkeypatch) -> Iterator[tuple[SlowGateway, str]]:  # type: ignore[no-untyped-def]
    # Room for the slow answer even on a loaded machine; the hanging-gateway test lowers it again.
    monkeypatch.setattr(threema, "KEY_LOOKUP_TIMEOUT_S", 10.0)
    private = generate_private_key()
    SlowGateway.lookups = 0
    SlowGateway.answered_at = 0.0
    with SlowGateway(GATEWAY, SECRET, public_key_hex(private)) as fake:
        assert isinstance(fake, SlowGateway)
        fake.add_user(SLOW_SENDER)
        _, route_key = add_account(
            ctx,
            "threema",
            {"gateway_id": GATEWAY, "api_base": fake.url},
            {"api_secret": SECRET, "private_key": private},
        )
        with serve_konsent(ctx) as base:
            yield fake, f"{base}/webhooks/{route_key}"


def _stored(ctx) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def test_other_requests_are_answered_while_a_sender_key_lookup_waits_on_a_slow_gateway(ctx, slow):  # type: ignore[no-untyped-def]
    fake, url = slow
    base = url.split("/webhooks/")[0]
    with httpx.Client(timeout=10) as http:
        # A first request makes the route known, so the next callback takes the status fast path,
        # which parses on the event loop.
        assert http.post(url, content=b"from=x", headers=FORM).status_code in (401, 403)
        assert http.get(f"{base}/admin/login").status_code == 200  # templates compiled before timing
        answers: dict[str, int] = {}

        def callback() -> None:
            form = fake.callback_form(SLOW_SENDER, TYPE_TEXT, b"Hallo")
            with httpx.Client(timeout=10) as own:
                answers["callback"] = own.post(url, content=form, headers=FORM).status_code

        worker = threading.Thread(target=callback)
        started = time.monotonic()
        worker.start()
        time.sleep(0.3)  # the lookup is under way
        for _ in range(3):
            assert http.get(f"{base}/admin/login").status_code == 200
        others_done = time.monotonic()
        worker.join(10)
        took = time.monotonic() - started
    assert answers["callback"] == 200 and took >= fake.delay_s
    # Not stalled behind the gateway: all three were answered while the lookup still waited
    # (a blocked event loop answers them only after the gateway has answered).
    assert 0 < others_done < SlowGateway.answered_at, (others_done, SlowGateway.answered_at)
    assert _stored(ctx) == 1 and SlowGateway.lookups == 1


def test_a_senders_key_is_looked_up_once_and_then_cached(ctx, slow):  # type: ignore[no-untyped-def]
    fake, url = slow
    with httpx.Client(timeout=10) as http:
        for text in (b"eins", b"zwei"):
            form = fake.callback_form(SLOW_SENDER, TYPE_TEXT, text)
            assert http.post(url, content=form, headers=FORM).status_code == 200
    assert SlowGateway.lookups == 1 and _stored(ctx) == 2


def test_a_hanging_gateway_costs_a_callback_at_most_the_short_timeout(ctx, slow, monkeypatch):  # type: ignore[no-untyped-def]
    fake, url = slow
    monkeypatch.setattr(SlowGateway, "delay_s", 30.0)
    monkeypatch.setattr(threema, "KEY_LOOKUP_TIMEOUT_S", 0.5)
    with httpx.Client(timeout=10) as http:
        t0 = time.monotonic()
        answer = http.post(url, content=fake.callback_form(SLOW_SENDER, TYPE_TEXT, b"x"), headers=FORM)
        took = time.monotonic() - t0
    assert answer.status_code == 400 and took < 3.0  # the gateway calls back again later
    assert _stored(ctx) == 0
