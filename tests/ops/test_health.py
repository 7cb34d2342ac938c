"""/healthz and /readyz for load balancers: a stopped worker, an unreachable database,
pending migrations; details only for signed-in owners and admins (U6, #18)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import time_machine
from fastapi.testclient import TestClient

from konsent.delivery.worker import Worker
from konsent.flows.operations import health, heartbeat
from konsent.store.types import utcnow
from konsent.web.app import create_app
from tests.ops.support import beat_now, unreachable
from tests.web.test_admin_auth import as_role


def test_healthz_answers_ok_even_when_the_database_is_unreachable(ctx):
    broken = unreachable(ctx)
    with TestClient(create_app(broken)) as c:
        r = c.get("/healthz")
    broken.db.dispose()
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_is_ready_with_a_fresh_worker_heartbeat_and_says_only_that_to_anonymous(ctx, client):
    beat_now(ctx)
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}
    assert r.headers["cache-control"] == "no-store"


def test_readyz_is_503_when_no_worker_ever_reported(ctx, client):
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "not_ready"}


def test_readyz_turns_503_when_the_worker_stopped_beating(ctx, client):
    beat_now(ctx)
    assert client.get("/readyz").status_code == 200
    with time_machine.travel(utcnow() + heartbeat.STALE_AFTER + timedelta(seconds=5), tick=False):
        r = client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"status": "not_ready"}


def test_readyz_is_503_with_the_database_unreachable(ctx):
    broken = unreachable(ctx)
    with TestClient(create_app(broken)) as c:
        r = c.get("/readyz")
    broken.db.dispose()
    assert r.status_code == 503 and r.json() == {"status": "not_ready"}


def test_readyz_is_503_while_migrations_are_pending(ctx, client, monkeypatch):
    beat_now(ctx)
    monkeypatch.setattr(health, "head_revision", lambda: "9999")
    assert client.get("/readyz").status_code == 503


def test_admin_session_sees_each_check_agent_does_not(ctx, demo, client):
    beat_now(ctx)
    as_role(ctx, client, "admin")
    r = client.get("/readyz")
    checks = r.json()["checks"]
    assert set(checks) == {"database", "migrations", "keystore", "worker"}
    assert all(c["ok"] for c in checks.values())
    assert "1 alive" in checks["worker"]["detail"]
    assert "version" in client.get("/healthz").json()

    other = TestClient(client.app)
    as_role(ctx, other, "agent")
    assert other.get("/readyz").json() == {"status": "ready"}
    assert other.get("/healthz").json() == {"status": "ok"}


def test_admin_sees_which_check_fails_when_the_worker_is_stale(ctx, demo, client):
    beat_now(ctx)
    as_role(ctx, client, "owner")
    with time_machine.travel(utcnow() + timedelta(minutes=5), tick=False):
        body = client.get("/readyz").json()
    assert body["status"] == "not_ready"
    assert body["checks"]["worker"]["ok"] is False and body["checks"]["database"]["ok"] is True


def test_running_worker_records_a_heartbeat_and_removes_it_when_stopped(ctx):
    stop = threading.Event()
    w = Worker(ctx, "host-b:99:beef")
    t = threading.Thread(target=lambda: asyncio.run(w.run(stop)))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with ctx.db.read() as s:
                if [b.worker_id for b in heartbeat.beats(s)] == ["host-b:99:beef"]:
                    break
            time.sleep(0.05)
        assert health.readiness(ctx).ready
    finally:
        stop.set()
        t.join(20)
    with ctx.db.read() as s:
        assert heartbeat.beats(s) == []
    assert not health.readiness(ctx).ready
