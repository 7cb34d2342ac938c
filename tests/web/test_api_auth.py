"""Who may call the REST API: tokens, sessions with CSRF, and roles (S3, M4)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from konsent.flows.organisation import staff, tenants
from konsent.store.tables import ApiToken, Message, StaffUser
from konsent.web.deps import CSRF_HEADER, SESSION_COOKIE
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import agents_see_unrouted, subscribe

PHONE = "+4915112345678"


@pytest.fixture
def subscriber(ctx, demo) -> int:
    subscribe(ctx, PHONE, ["angebote"])
    return contact_of(ctx, PHONE).id


def _send(client, contact_id: int, headers: dict[str, str]):
    return client.post(
        "/api/v1/messages",
        json={"contact_id": contact_id, "purpose": "newsletter:angebote", "text": "Hallo"},
        headers=headers,
    )


def _out_messages(ctx) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out")) or 0)


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer ks_not-a-token"}, {"authorization": "Basic YWRtaW46YWRtaW4="}],
)
def test_without_a_valid_token_or_session_the_api_answers_401(ctx, client, subscriber, headers):
    before = _out_messages(ctx)
    for method, url in [
        ("POST", "/api/v1/messages"),
        ("GET", f"/api/v1/contacts/{subscriber}"),
        ("GET", "/api/v1/contacts"),
        ("GET", "/api/v1/ledger/verify"),
    ]:
        r = _send(client, subscriber, headers) if method == "POST" else client.get(url, headers=headers)
        assert r.status_code == 401, (url, r.text)
        assert r.json()["code"] == "unauthenticated"
    assert _out_messages(ctx) == before


def test_viewer_token_cannot_send_or_see_personal_data(ctx, client, subscriber):
    """S3: a viewer reads counts and states, but may not send, read messages or export proofs."""
    token = api_token(ctx, "viewer")
    before = _out_messages(ctx)
    r = _send(client, subscriber, auth(token))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert _out_messages(ctx) == before
    assert client.get(f"/api/v1/contacts/{subscriber}/messages", headers=auth(token)).status_code == 403
    assert client.get(f"/api/v1/contacts/{subscriber}/proof", headers=auth(token)).status_code == 403
    seen = client.get(f"/api/v1/contacts/{subscriber}", headers=auth(token))
    assert seen.status_code == 200 and "identities" not in seen.json() and PHONE not in seen.text


@pytest.mark.parametrize(("role", "status"), [("agent", 202), ("admin", 202), ("owner", 202), ("dpo", 403)])
def test_roles_that_may_send(ctx, client, subscriber, role, status):
    agents_see_unrouted(ctx)  # an agent token sends only to contacts it may see (flows.inbox.scope)
    assert _send(client, subscriber, auth(api_token(ctx, role))).status_code == status


def test_agent_cannot_verify_the_ledger_but_dpo_can(ctx, client, subscriber):
    assert client.get("/api/v1/ledger/verify", headers=auth(api_token(ctx, "agent"))).status_code == 403
    r = client.get("/api/v1/ledger/verify", headers=auth(api_token(ctx, "dpo")))
    assert r.status_code == 200 and r.json()["ok"] is True


def test_session_needs_the_csrf_header_for_writes(ctx, client, subscriber, demo):
    with ctx.db.write() as s:
        user = s.scalars(select(StaffUser).where(StaffUser.tenant_id == demo.tenant_id)).one()
        sess = staff.start_session(s, user, 1)
    client.cookies.set(SESSION_COOKIE, sess.cookie)
    before = _out_messages(ctx)
    r = _send(client, subscriber, {})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = _send(client, subscriber, {CSRF_HEADER: "wrong"})
    assert r.status_code == 403
    assert _out_messages(ctx) == before
    assert _send(client, subscriber, {CSRF_HEADER: sess.csrf_token}).status_code == 202
    assert client.get(f"/api/v1/contacts/{subscriber}").status_code == 200


def test_token_is_stored_only_as_a_hash(ctx, demo):
    with ctx.db.write() as s:
        token = staff.create_api_token(s, tenants.tenant_by_slug(s, "demo"), "ci", "agent")
    with ctx.db.read() as s:
        row = s.scalars(select(ApiToken)).one()
    assert token not in row.token_hash and len(row.token_hash) == 64


def test_openapi_documents_the_409_refusal_of_the_send_endpoint(client):
    """Issue 2 step 7: the OpenAPI docs say a send without legal basis is refused with 409."""
    doc = client.get("/api/v1/openapi.json").json()
    responses = doc["paths"]["/api/v1/messages"]["post"]["responses"]
    assert {"202", "409"} <= set(responses)
    assert client.get("/api/docs").status_code == 200
