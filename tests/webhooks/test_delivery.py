"""Outgoing webhooks end to end against a receiver on 127.0.0.1: signatures, retries after 500s and
timeouts, the same event id on every try, disablement after days of failure, redelivery (M4, S8)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from konsent.delivery import webhooks_out
from konsent.domain import webhooks as rules
from konsent.store.tables import AuditEntry, WebhookDelivery, WebhookEndpoint
from konsent.store.types import utcnow
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import subscribe
from tests.webhooks.receiver import Receiver, running_receiver

PHONE = "+4915112340002"


@pytest.fixture
def receiver(ctx):  # type: ignore[no-untyped-def]
    ctx.settings.allow_private_urls = True  # the receiver is on 127.0.0.1
    ctx.settings.webhook_timeout_seconds = 0.5
    with running_receiver() as rec:
        yield rec


def _endpoint(client, ctx, url: str, events: list[str], **more) -> dict:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/webhook-endpoints", json={"url": url, "events": events, **more}, headers=auth(api_token(ctx))
    )
    assert r.status_code == 201, r.text
    assert r.json()["secret"].startswith("whsec_")
    return r.json()


def _drain(ctx) -> int:  # type: ignore[no-untyped-def]
    return asyncio.run(webhooks_out.drain(ctx))


def _withdraw(client, ctx) -> int:  # type: ignore[no-untyped-def]
    subscribe(ctx, PHONE, ["angebote"])
    cid = contact_of(ctx, PHONE).id
    r = client.post(f"/api/v1/contacts/{cid}/withdraw", json={}, headers=auth(api_token(ctx)))
    assert r.status_code == 200
    return cid


def _delivery(ctx) -> WebhookDelivery:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalars(select(WebhookDelivery)).one()


def test_event_arrives_signed_with_the_endpoint_secret(ctx, demo, client, receiver: Receiver):
    ep = _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    cid = _withdraw(client, ctx)
    assert _drain(ctx) == 1
    (got,) = receiver.got
    assert rules.verify(ep["secret"], got.headers[rules.SIGNATURE_HEADER], got.body, int(time.time()))
    assert not rules.verify("whsec_other", got.headers[rules.SIGNATURE_HEADER], got.body, int(time.time()))
    event = json.loads(got.body)
    assert event["type"] == "consent.withdrawn" and got.headers["Konsent-Event-Id"] == event["id"]
    assert event["data"] == {
        "contact_id": cid,
        "purpose": "newsletter:angebote",
        "source": "api",
        "channel": "",
    }
    assert "personal" not in event["data"]  # the endpoint did not ask for personal data
    assert _delivery(ctx).state == "done"


def test_personal_data_only_for_an_endpoint_configured_to_receive_it(ctx, demo, client, receiver):
    _endpoint(client, ctx, receiver.url, ["message.received"], include_personal=True)
    subscribe(ctx, PHONE, ["angebote"])
    _drain(ctx)
    event = json.loads(receiver.got[0].body)
    assert event["data"]["personal"]["contact"]["identities"][0]["address"] == PHONE
    assert event["data"]["personal"]["message"]["text"]  # the code message the phone sent
    with ctx.db.read() as s:  # stored without it
        assert "personal" not in s.scalars(select(WebhookDelivery)).first().payload["data"]


def test_a_500_is_retried_later_with_the_same_event_id(ctx, demo, client, receiver):
    _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    _withdraw(client, ctx)
    receiver.plan = ["500"]
    _drain(ctx)
    d = _delivery(ctx)
    assert d.state == "pending" and d.last_status == 500 and d.run_at > utcnow()
    assert _drain(ctx) == 0  # not before its backoff
    with time_machine.travel(utcnow() + rules.backoff(1) + timedelta(seconds=1), tick=False):
        assert _drain(ctx) == 1
    assert _delivery(ctx).state == "done"
    ids = [r.headers["Konsent-Event-Id"] for r in receiver.got]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_a_timeout_is_retried(ctx, demo, client, receiver):
    _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    _withdraw(client, ctx)
    receiver.plan = ["slow"]
    _drain(ctx)
    d = _delivery(ctx)
    assert d.state == "pending" and d.last_error == "timeout"
    with time_machine.travel(utcnow() + timedelta(minutes=5), tick=False):
        _drain(ctx)
    assert _delivery(ctx).state == "done"


def test_backoff_grows_and_gives_up_after_three_days():
    waits = [rules.backoff(n) for n in range(1, 30)]
    assert waits == sorted(waits) and waits[0] == timedelta(seconds=30) and waits[-1] == timedelta(hours=12)
    t0 = utcnow()
    assert not rules.gives_up(t0, t0 + timedelta(days=2, hours=23))
    assert rules.gives_up(t0, t0 + timedelta(days=3))


def test_an_endpoint_failing_for_days_is_disabled_with_a_notice(ctx, demo, client, receiver):
    ep = _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    _withdraw(client, ctx)
    receiver.plan = ["500"] * 100
    start = utcnow()
    _drain(ctx)
    at = start
    while at < start + timedelta(days=3, hours=13):
        at += timedelta(hours=12, minutes=1)
        with time_machine.travel(at, tick=False):
            _drain(ctx)
            webhooks_out.housekeeping(ctx, utcnow())
    with ctx.db.read() as s:
        row = s.get(WebhookEndpoint, ep["id"])
        assert row is not None and not row.active and "failing since" in row.disabled_reason
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.disabled")).first()
    assert _delivery(ctx).state == "failed"
    shown = client.get(f"/api/v1/webhook-endpoints/{ep['id']}", headers=auth(api_token(ctx))).json()
    assert shown["active"] is False and shown["disabled_reason"]


def test_redeliver_sends_the_same_event_again(ctx, demo, client, receiver):
    ep = _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    _withdraw(client, ctx)
    _drain(ctx)
    token = api_token(ctx)
    log = client.get(f"/api/v1/webhook-endpoints/{ep['id']}/deliveries", headers=auth(token)).json()
    assert [d["state"] for d in log] == ["done"]
    r = client.post(
        f"/api/v1/webhook-endpoints/{ep['id']}/deliveries/{log[0]['id']}/redeliver", headers=auth(token)
    )
    assert r.status_code == 202, r.text
    assert _drain(ctx) == 1
    ids = [g.headers["Konsent-Event-Id"] for g in receiver.got]
    assert ids == [log[0]["event_id"]] * 2


def test_rotated_secret_signs_alongside_the_old_one_during_the_overlap(ctx, demo, client, receiver):
    ep = _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    r = client.post(f"/api/v1/webhook-endpoints/{ep['id']}/rotate-secret", headers=auth(api_token(ctx)))
    new_secret = r.json()["secret"]
    assert new_secret != ep["secret"]
    _withdraw(client, ctx)
    _drain(ctx)
    got = receiver.got[0]
    header = got.headers[rules.SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    now = int(time.time())
    assert rules.verify(ep["secret"], header, got.body, now) and rules.verify(
        new_secret, header, got.body, now
    )
    with ctx.db.write() as s:
        s.execute(
            WebhookDelivery.__table__.update().values(state="pending", run_at=utcnow() + timedelta(days=2))
        )
    with time_machine.travel(utcnow() + timedelta(days=2, minutes=1), tick=False):
        _drain(ctx)
    late = receiver.got[-1].headers[rules.SIGNATURE_HEADER]
    assert late.count("v1=") == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest",
        "https://user:pw@crm.example.com/hook",
        "ftp://crm.example.com/",
    ],
)
def test_endpoint_urls_must_be_public_https(ctx, demo, client, url):
    r = client.post(
        "/api/v1/webhook-endpoints",
        json={"url": url, "events": ["contact.created"]},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 422 and "url refused" in r.json()["message"]


def test_a_name_resolving_to_a_private_address_is_not_called(ctx, demo):
    """The resolver refuses private answers, so DNS cannot point a public-looking name inside (S8)."""

    async def go() -> None:
        resolver = webhooks_out.PublicResolver()
        with pytest.raises(OSError):
            await resolver.resolve("localhost", 443)

    asyncio.run(go())


def test_unknown_event_types_are_refused(ctx, demo, client):
    r = client.post(
        "/api/v1/webhook-endpoints",
        json={"url": "https://crm.example.com/hook", "events": ["contact.teleported"]},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 422


def test_the_worker_sends_webhooks_in_its_own_loop(ctx, demo, client, receiver):
    from konsent.delivery.worker import run_in_thread

    _endpoint(client, ctx, receiver.url, ["consent.withdrawn"])
    _withdraw(client, ctx)
    thread, stop = run_in_thread(ctx)
    try:
        deadline = time.monotonic() + 15
        while not receiver.got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(15)
    assert len(receiver.got) == 1 and _delivery(ctx).state == "done"
