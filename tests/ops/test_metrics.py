"""/metrics in the Prometheus text format: who may scrape, and values that move with real
traffic — webhooks, sends, provider latency, outbox, broadcasts, privacy deadlines,
heartbeats (U6, #18)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from konsent.flows.outbound import broadcast as bc
from konsent.flows.privacy import rights as privacy
from konsent.store.types import utcnow
from konsent.web.app import create_app
from tests.broadcast.seed import seed
from tests.conftest import drain
from tests.flows.support import signed_request
from tests.helpers import demo_tenant, request_code, sim_account
from tests.ops.support import beat_now, unreachable

LOCAL = ("127.0.0.1", 40000)


@pytest.fixture
def local(app):  # type: ignore[no-untyped-def]
    with TestClient(app, client=LOCAL) as c:
        yield c


def scrape(c: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def post_webhook(c: TestClient, ctx, payload: dict, *, secret_ok: bool = True, route: str | None = None):  # type: ignore[no-untyped-def]
    acc = sim_account(ctx)
    req = signed_request(ctx, acc, payload)
    headers = dict(req.headers)
    if not secret_ok:
        headers["x-simulator-signature"] = "sha256=" + "0" * 64
    return c.post(f"/webhooks/{route or acc.route_key}", content=req.body, headers=headers)


def test_metrics_are_refused_to_other_hosts_without_the_token(client):
    r = client.get("/metrics")
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


def test_metrics_relayed_by_a_local_reverse_proxy_are_refused(local):
    assert local.get("/metrics", headers={"x-forwarded-for": "198.51.100.7"}).status_code == 403
    assert local.get("/metrics", headers={"forwarded": "for=198.51.100.7"}).status_code == 403


def test_metrics_token_opens_metrics_to_other_hosts_and_a_wrong_one_does_not(ctx, client):
    ctx.settings.metrics_token = SecretStr("s3cret-scrape")
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"authorization": "Bearer s3cret-scrape"}).status_code == 200


def test_webhook_counters_move_with_real_webhooks(ctx, demo, local):
    kind = {"kind": "simulator"}
    before = scrape(local)
    msg = {"messages": [{"id": "m-ops-1", "from": "+4915100000001", "text": "Hallo"}]}
    assert post_webhook(local, ctx, msg).status_code == 200
    assert post_webhook(local, ctx, {"statuses": [{"id": "nope", "status": "delivered"}]}).status_code == 200
    assert post_webhook(local, ctx, msg, secret_ok=False).status_code == 401
    assert post_webhook(local, ctx, msg, route="no-such-route").status_code == 404
    local.post(f"/webhooks/{sim_account(ctx).route_key}", content=b"[1,", headers={})
    after = scrape(local)
    received = "konsent_webhooks_received_total"
    rejected = "konsent_webhooks_rejected_total"
    assert value(after, received, **kind) - value(before, received, **kind) == 2
    sig = {"kind": "simulator", "reason": "signature"}
    assert value(after, rejected, **sig) - value(before, rejected, **sig) == 2  # bad signature, junk body
    unknown = {"kind": "unknown", "reason": "unknown_route"}
    assert value(after, rejected, **unknown) - value(before, rejected, **unknown) == 1


def test_sends_latency_and_outbox_gauges_move_with_a_real_send(ctx, demo, local):
    tid, acc = demo_tenant(ctx).id, sim_account(ctx).id
    before = scrape(local)
    pending = request_code(ctx, ["angebote"])
    post_webhook(
        local, ctx, {"messages": [{"id": "m-ops-2", "from": "+4915100000002", "text": pending.prefill}]}
    )
    queued = scrape(local)
    labels = {"tenant_id": str(tid), "account_id": str(acc), "state": "available"}
    assert value(queued, "konsent_outbox_rows", **labels) == 1  # the confirmation, waiting
    assert drain(ctx) == 1
    after = scrape(local)
    assert value(after, "konsent_outbox_rows", **labels) == 0
    sent = {"kind": "simulator", "outcome": "sent"}
    assert value(after, "konsent_sends_total", **sent) - value(before, "konsent_sends_total", **sent) == 1
    lat = "konsent_provider_latency_seconds_count"
    assert value(after, lat, kind="simulator") - value(before, lat, kind="simulator") == 1


def test_broadcast_progress_privacy_deadlines_and_heartbeats_are_counted_at_scrape(ctx, demo, local):
    tid, acc = demo_tenant(ctx).id, sim_account(ctx).id
    seed(ctx, acc, ["+4915100000011", "+4915100000012"])
    with ctx.db.write() as s:
        b = bc.create_broadcast(ctx, s, tid, name="Herbst", topic="angebote", text="Hallo", author="test")
        privacy.log_request(s, tid, "access", "email", received_at=utcnow() - timedelta(days=40))
        privacy.log_request(s, tid, "erasure", "email", received_at=utcnow() - timedelta(days=26))
        privacy.log_request(s, tid, "erasure", "email", received_at=utcnow())  # a month away: not near
    bc.act(ctx, tid, b.id, "send", "test")
    while bc.queue_batch(ctx, tid, b.id):
        pass
    beat_now(ctx, "host-c:1:a")
    m = scrape(local)
    ids = {"tenant_id": str(tid), "broadcast_id": str(b.id)}
    assert value(m, "konsent_broadcast_queued", **ids) == 2
    assert value(m, "konsent_broadcast_outbox_rows", state="available", **ids) == 2
    assert value(m, "konsent_privacy_requests_due", tenant_id=str(tid), due="overdue") == 1
    assert value(m, "konsent_privacy_requests_due", tenant_id=str(tid), due="7d") == 1
    assert value(m, "konsent_workers_alive") == 1
    assert value(m, "konsent_worker_heartbeat_age_seconds", worker="host-c:1:a") < 60
    assert value(m, "konsent_database_up") == 1


def test_every_documented_metric_is_exposed_and_labels_carry_ids_not_names(ctx, demo, local):
    text = local.get("/metrics").text
    for name in (
        "konsent_webhooks_received_total",
        "konsent_webhooks_rejected_total",
        "konsent_sends_total",
        "konsent_provider_latency_seconds",
        "konsent_pacing_wait_seconds",
        "konsent_retention_runs_total",
        "konsent_outbox_rows",
        "konsent_broadcast_outbox_rows",
        "konsent_privacy_requests_due",
        "konsent_retention_last_run_timestamp_seconds",
        "konsent_worker_heartbeat_age_seconds",
        "konsent_workers_alive",
    ):
        assert f"# TYPE {name} " in text, name
    ours = "\n".join(line for line in text.splitlines() if line.startswith("konsent_"))
    assert "demo" not in ours and "Demo GmbH" not in ours


def test_metrics_still_answer_with_the_database_down(ctx):
    broken = unreachable(ctx)
    with TestClient(create_app(broken), client=LOCAL) as c:
        m = scrape(c)
    broken.db.dispose()
    assert value(m, "konsent_database_up") == 0
    assert ("konsent_worker_heartbeats_total", ()) in m  # the process counters still come
