"""Status webhooks: group-committed fast path, duplicates, order, statuses that overtake the send (CH4)."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from sqlalchemy import func, select

from konsent.flows.inbound import simulator
from konsent.flows.outbound import broadcast as bc
from konsent.store.tables import EarlyStatus, Message, WebhookEvent
from tests.broadcast.seed import seed
from tests.conftest import drain, on_postgres
from tests.helpers import sim_account


def _sent(ctx, demo, phones):  # type: ignore[no-untyped-def]
    acc = sim_account(ctx).id
    seed(ctx, acc, phones)
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, demo.tenant_id, name="S", topic="angebote", text="Hi")
        bc.schedule(s, b, None)
        bid = b.id
    bc.queue_all(ctx, demo.tenant_id, bid)
    drain(ctx)
    return acc, [simulator.phone_inbox(ctx, acc, p)[0].provider_id for p in phones]


def _status(ctx, pid):  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalar(select(Message.status).where(Message.provider_id == pid))


def test_concurrent_status_webhooks_are_stored_once_and_read_is_never_undone(ctx, demo):
    """Threads post delivered/read twice each: one dedupe row per status, the end state is read (CH4)."""
    acc, pids = _sent(ctx, demo, [f"+49151400000{i:02d}" for i in range(12)])
    jobs = [(pid, st) for pid in pids for st in ("read", "delivered", "read", "delivered")]
    threads = [threading.Thread(target=simulator.phone_ack, args=(ctx, acc, [pid], st)) for pid, st in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {_status(ctx, pid) for pid in pids} == {"read"}
    with ctx.db.read() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(WebhookEvent).where(WebhookEvent.kind == "StatusUpdate")
            )
            == 24
        )


def test_status_that_overtakes_the_provider_id_is_applied_when_the_send_is_recorded(ctx, demo):
    """A 'delivered' webhook before the worker recorded the provider id is kept and applied later (CH4)."""
    acc = sim_account(ctx).id
    res = simulator.phone_ack(ctx, acc, ["sim.not-yet-recorded"], "delivered")
    assert res.status == 200
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(EarlyStatus)) == 1
    _, (pid,) = _sent(ctx, demo, ["+4915140000099"])
    with ctx.db.write() as s:  # the provider id the early status named turns out to be this message's
        s.execute(
            EarlyStatus.__table__.update().values(provider_id=pid)  # type: ignore[attr-defined]
        )
    from konsent.flows.inbound import status_early
    from konsent.store.types import utcnow

    assert status_early.reconcile(ctx, utcnow()) == 1
    assert _status(ctx, pid) == "delivered"
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(EarlyStatus)) == 0


def test_fast_path_notices_a_new_secret_and_a_deactivated_account_at_once(ctx, demo):
    """A remembered account is re-checked inside the commit: the old secret is refused right after a
    change, a deactivated account answers 404 (CH2)."""
    from konsent.channels.base import WebhookRequest
    from konsent.channels.simulator import SIGNATURE_HEADER, sign
    from konsent.flows.inbound.receive import receive_webhook
    from konsent.flows.organisation import tenants
    from konsent.store.tables import ChannelAccount

    acc_id, (pid,) = _sent(ctx, demo, ["+4915140000077"])
    with ctx.db.read() as s:
        acc = s.get(ChannelAccount, acc_id)
        old = tenants.account_config(ctx, s, acc).secrets["webhook_secret"]
        route = acc.route_key

    def post(secret: str, status: str) -> int:
        body = (f'{{"statuses": [{{"id": "{pid}", "status": "{status}", "timestamp": 1}}]}}').encode()
        return receive_webhook(
            ctx, route, WebhookRequest("POST", {SIGNATURE_HEADER: sign(secret, body)}, {}, body)
        ).status

    assert post(old, "delivered") == 200  # the route is now remembered
    with ctx.db.write() as s:
        tenants.store_secrets(ctx, s, s.get(ChannelAccount, acc_id), {"webhook_secret": "brand-new-secret"})
    assert post(old, "read") == 401
    assert _status(ctx, pid) == "delivered"
    assert post("brand-new-secret", "read") == 200
    assert _status(ctx, pid) == "read"
    with ctx.db.write() as s:
        s.get(ChannelAccount, acc_id).active = False
    from konsent.domain.errors import NotFound

    try:
        status = post("brand-new-secret", "failed")
    except NotFound:
        status = 404
    assert status == 404


def test_status_webhooks_over_http_share_group_commits_and_each_answers_after_storing(ctx, demo, app):
    """CH4: concurrent status webhooks on one event loop: every 200 comes after its status is stored,
    a duplicate is stored once, a forged signature is refused and stores nothing."""
    from konsent.channels.simulator import SIGNATURE_HEADER, sign
    from konsent.flows.inbound import status_sink
    from konsent.flows.organisation import tenants

    acc, pids = _sent(ctx, demo, [f"+49151500000{i:02d}" for i in range(30)])
    with ctx.db.read() as s:
        account = s.get(tenants.ChannelAccount, acc)
        route, secret = account.route_key, tenants.account_config(ctx, s, account).secrets["webhook_secret"]
    status_sink.account_for_route(ctx, route)  # the route is known: the async fast path applies
    batches: list[int] = []
    flush = status_sink.StatusSink._flush

    def counting(self, batch):  # type: ignore[no-untyped-def]
        batches.append(len(batch))
        return flush(self, batch)

    def post(client, pid, status, key=secret):  # type: ignore[no-untyped-def]
        body = json.dumps({"statuses": [{"id": pid, "status": status, "timestamp": 1.0}]}).encode()
        return client.post(f"/webhooks/{route}", content=body, headers={SIGNATURE_HEADER: sign(key, body)})

    async def run():  # type: ignore[no-untyped-def]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answers = await asyncio.gather(
                *(post(client, pid, st) for pid in pids for st in ("delivered", "read", "read"))
            )
            forged = await post(client, pids[0], "failed", key="not-the-secret")
        return answers, forged

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(status_sink.StatusSink, "_flush", counting)
        answers, forged = asyncio.run(run())
    assert [a.status_code for a in answers] == [200] * 90
    # every answer carries the security headers exactly once (they were once appended to a shared list)
    assert all(a.headers.get_list("x-content-type-options") == ["nosniff"] for a in answers)
    assert forged.status_code == 401
    assert {_status(ctx, pid) for pid in pids} == {"read"}
    assert sum(batches) == 90 and len(batches) < 90  # requests were grouped into fewer commits
    with ctx.db.read() as s:
        stored = s.scalar(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.kind == "StatusUpdate")
        )
    assert stored == 60  # delivered + read per message; the second read was a duplicate


@pytest.mark.skipif(not on_postgres(), reason="the kept connections of the PostgreSQL group commit")
def test_status_webhooks_survive_a_database_restart_of_the_kept_connection(ctx, demo):
    """CH4 on PostgreSQL: the group commit keeps its connection between batches. If the server
    drops it (a restart, a failover), the next status is still stored and answered 200, once."""
    from sqlalchemy import text

    from konsent.flows.inbound import status_sink

    acc, (pid,) = _sent(ctx, demo, ["+4915140000055"])
    assert simulator.phone_ack(ctx, acc, [pid], "delivered").status == 200
    kept = status_sink.sink(ctx)._writer._idle
    assert len(kept) == 1
    backend = kept[0].driver_connection.info.backend_pid
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend}).scalar()
    assert simulator.phone_ack(ctx, acc, [pid], "read").status == 200
    assert _status(ctx, pid) == "read"
    assert simulator.phone_ack(ctx, acc, [pid], "read").status == 200  # the provider retries: a duplicate
    with ctx.db.read() as s:
        keys = s.scalars(select(WebhookEvent.dedupe_key).where(WebhookEvent.kind == "StatusUpdate")).all()
    assert len(keys) == 2 and all(k.startswith("st:") and pid not in k for k in keys)  # keyed hashes
    assert status_sink.sink(ctx)._writer._idle[0].driver_connection.info.backend_pid != backend


@pytest.mark.skipif(not on_postgres(), reason="the kept connections of the PostgreSQL group commit")
def test_closing_konsent_hands_the_kept_status_connections_back(ctx, demo):
    """A process that closes its installation leaves no connection checked out (the server's
    connection slots are shared by every konsent process)."""
    acc, (pid,) = _sent(ctx, demo, ["+4915140000056"])
    assert simulator.phone_ack(ctx, acc, [pid], "delivered").status == 200
    assert ctx.db.engine.pool.checkedout() == 1
    asyncio.run(ctx.close())
    assert ctx.db.engine.pool.checkedout() == 0


def test_statuses_that_overtake_a_whole_batch_are_applied_when_it_is_recorded(ctx):
    """CH4: a provider's status webhooks may all arrive before the worker records the sends (the
    fake numbers its messages fp.<account>.<n>). Recording the batch applies them at once, in
    arrival order, without waiting for the periodic reconcile, and nothing is left over."""
    from bench.benchhttp import BenchHttpChannel  # noqa: F401 - registers the bench adapter
    from bench.fakeprovider import ThreadedFake
    from bench.seedbulk import seed_bulk, setup_tenant
    from sqlalchemy import insert

    from konsent.store.types import utcnow

    n = 40
    with ThreadedFake() as fake:
        tenant_id, (acc,) = setup_tenant(ctx, fake.url, rate=1000)
        seed_bulk(ctx, tenant_id, [acc], n)
        now = utcnow()
        early = [
            {
                "tenant_id": tenant_id,
                "channel_account_id": acc,
                "provider_id": f"fp.{acc}.{i}",
                "status": status,
                "reason": "",
                "at": now,
            }
            for i in range(1, n + 1)
            for status in ("delivered", "read")
        ]
        early.append(  # a late failure report never undoes a read (CH4)
            {
                "tenant_id": tenant_id,
                "channel_account_id": acc,
                "provider_id": f"fp.{acc}.1",
                "status": "failed",
                "reason": "131026",
                "at": now,
            }
        )
        with ctx.db.write() as s:
            s.execute(insert(EarlyStatus), early)
            b = bc.create_broadcast(ctx, s, tenant_id, name="E", topic="news", text="Hallo")
            bc.schedule(s, b, None)
            bid = b.id
        bc.queue_all(ctx, tenant_id, bid)
        assert drain(ctx) == n
    with ctx.db.read() as s:
        statuses = s.execute(
            select(Message.status, func.count())
            .where(Message.tenant_id == tenant_id)
            .group_by(Message.status)
        ).all()
        assert dict(statuses) == {"read": n}
        assert s.scalar(select(func.count()).select_from(EarlyStatus)) == 0
