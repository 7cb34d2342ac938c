"""REST API conventions: idempotent writes (also concurrent), scopes, rate limits, one error body,
offline docs, OpenAPI security and error schemas (M4, S8)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from konsent.flows.organisation import staff, tenants
from konsent.store.tables import Contact, Message, OutboxRow
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import sim_account, subscribe

PHONE = "+4915112340003"


def _count(ctx, model, *where) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def subscriber(ctx, demo) -> int:  # type: ignore[no-untyped-def]
    subscribe(ctx, PHONE, ["angebote"])
    return contact_of(ctx, PHONE).id


def _send(client, token, cid, key, text="Order 1 shipped"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/messages",
        json={"contact_id": cid, "purpose": "service", "text": text},
        headers={**auth(token), "Idempotency-Key": key},
    )


def test_the_same_send_twice_with_one_key_queues_one_message(ctx, client, subscriber):
    token = api_token(ctx)
    out_before, queued_before = _count(ctx, Message, Message.direction == "out"), _count(ctx, OutboxRow)
    first, second = _send(client, token, subscriber, "k-1"), _send(client, token, subscriber, "k-1")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() and second.headers["idempotent-replayed"] == "true"
    assert _count(ctx, Message, Message.direction == "out") == out_before + 1
    assert _count(ctx, OutboxRow) == queued_before + 1
    assert _send(client, token, subscriber, "k-2").json()["id"] != first.json()["id"]  # a new key sends


def test_concurrent_sends_with_one_key_queue_one_message(ctx, app, subscriber):
    token = api_token(ctx)
    queued_before = _count(ctx, OutboxRow)
    barrier = threading.Barrier(4)
    answers: list = []

    def go() -> None:
        with TestClient(app) as c:
            barrier.wait()
            answers.append(_send(c, token, subscriber, "same-key"))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [202] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert _count(ctx, OutboxRow) == queued_before + 1


def test_the_same_key_with_another_body_is_refused(ctx, client, subscriber):
    token = api_token(ctx)
    assert _send(client, token, subscriber, "k-3").status_code == 202
    queued = _count(ctx, OutboxRow)
    again = _send(client, token, subscriber, "k-3", text="something else")
    assert again.status_code == 422 and again.json()["code"] == "idempotency_key_reused"
    assert _count(ctx, OutboxRow) == queued


def test_the_same_import_twice_with_one_key_creates_one_contact(ctx, client, demo):
    token = api_token(ctx)
    body = {
        "channel_account_id": sim_account(ctx).id,
        "contacts": [{"address": "+4915112349999", "topics": []}],
    }
    hdrs = {**auth(token), "Idempotency-Key": "import-1"}
    answers = [client.post("/api/v1/contacts/import", json=body, headers=hdrs) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[0].json() == answers[1].json()
    assert _count(ctx, Contact) == 1


def test_keys_are_per_token(ctx, client, subscriber):
    a, b = api_token(ctx), api_token(ctx)
    assert (
        _send(client, a, subscriber, "shared").json()["id"]
        != _send(client, b, subscriber, "shared").json()["id"]
    )


def test_a_token_over_its_rate_limit_gets_429_with_retry_after(ctx, client, demo):
    ctx.settings.api_rate_limit = "3/minute"
    token = api_token(ctx)
    codes = [client.get("/api/v1/topics", headers=auth(token)).status_code for _ in range(3)]
    late = client.get("/api/v1/topics", headers=auth(token))
    assert codes == [200] * 3 and late.status_code == 429
    assert late.json()["code"] == "rate_limited" and 1 <= int(late.headers["retry-after"]) <= 60
    assert client.get("/api/v1/topics", headers=auth(api_token(ctx))).status_code == 200  # per token


def test_scopes_narrow_a_token_below_its_role(ctx, client, subscriber):
    with ctx.db.write() as s:
        token = staff.create_api_token(
            s, tenants.tenant_by_slug(s, "demo"), "crm", "admin", ["contacts:read"]
        )
    assert client.get("/api/v1/contacts", headers=auth(token)).status_code == 200
    r = _send(client, token, subscriber, "k-4")
    assert r.status_code == 403 and "messages:write" in r.json()["message"]


def test_a_viewer_token_cannot_send_whatever_its_scopes(ctx, client, subscriber):
    with ctx.db.write() as s:
        token = staff.create_api_token(
            s, tenants.tenant_by_slug(s, "demo"), "v", "viewer", ["messages:write"]
        )
    assert _send(client, token, subscriber, "k-5").status_code == 403


def test_errors_share_one_body_and_422_lists_fields_in_detail(ctx, client, demo):
    token = api_token(ctx)
    missing = client.get("/api/v1/contacts/999", headers=auth(token))
    assert missing.status_code == 404 and set(missing.json()) >= {"code", "message", "detail"}
    bad = client.post("/api/v1/messages", json={"purpose": "service"}, headers=auth(token))
    assert bad.status_code == 422 and isinstance(bad.json()["detail"], list)
    assert {"field", "message"} <= set(bad.json()["detail"][0])
    anon = client.get("/api/v1/contacts")
    assert anon.status_code == 401 and anon.json()["detail"] is None


CREATE_OR_SEND = {
    "/api/v1/messages",
    "/api/v1/contacts",
    "/api/v1/contacts/import",
    "/api/v1/optins",
    "/api/v1/conversations/{conversation_id}/reply",
    "/api/v1/conversations/{conversation_id}/notes",
    "/api/v1/broadcasts",
    "/api/v1/privacy-requests",
    "/api/v1/webhook-endpoints",
    "/api/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
}


def test_openapi_has_bearer_auth_error_bodies_and_idempotency_header(client):
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in ops.items():
            assert op["security"] == [{"bearer": []}], (path, method)
            for code in ("401", "403", "422", "429"):
                ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorBody"), (path, method, code)
            if method == "post" and path in CREATE_OR_SEND:
                assert any(p["name"] == "Idempotency-Key" for p in op["parameters"]), path


def test_api_docs_load_their_assets_from_konsent_not_a_cdn(client):
    for page in ("/api/docs", "/api/redoc"):
        html = client.get(page).text
        assert "cdn" not in html.lower() and "https://" not in html, page
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/docs/assets/redoc.standalone.js").status_code == 200


def test_keys_are_forgotten_after_a_day(ctx, client, subscriber):
    import time_machine

    from konsent.delivery import webhooks_out
    from konsent.store.types import utcnow

    token = api_token(ctx)
    first = _send(client, token, subscriber, "k-day")
    with time_machine.travel(utcnow() + timedelta(hours=25), tick=False):
        webhooks_out.housekeeping(ctx, utcnow())
    assert _send(client, token, subscriber, "k-day").json()["id"] != first.json()["id"]
