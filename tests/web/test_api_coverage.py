"""REST API coverage of what staff do in the admin: conversations, broadcasts, templates, privacy
requests and the audit log, under the admin's rules (M1, M3, M4, D5, S4)."""

from __future__ import annotations

from sqlalchemy import select

from konsent.store.tables import AuditEntry, ConversationNote
from tests.flows.support import api_token, auth
from tests.inbox.conftest import Crew, conversation_of, crew, say  # noqa: F401  (fixture)

PHONE = "+491701234567"


def test_conversations_list_read_reply_assign_note_and_close(ctx, client, crew: Crew):  # noqa: F811
    say(ctx, crew, PHONE, "Hallo, wo ist mein Paket?")
    conv = conversation_of(ctx, crew, PHONE)
    token = api_token(ctx)
    listed = client.get("/api/v1/conversations?state=all", headers=auth(token))
    assert listed.status_code == 200 and conv.id in [c["id"] for c in listed.json()]
    view = client.get(f"/api/v1/conversations/{conv.id}", headers=auth(token)).json()
    assert "Paket" in view["messages"][0]["text"]
    r = client.post(
        f"/api/v1/conversations/{conv.id}/reply", json={"text": "Heute los."}, headers=auth(token)
    )
    assert r.status_code == 202, r.text
    anna = crew.users["anna"].id
    r = client.post(
        f"/api/v1/conversations/{conv.id}/assign", json={"assignee_id": anna}, headers=auth(token)
    )
    assert r.status_code == 200 and r.json()["assignee_id"] == anna
    r = client.post(f"/api/v1/conversations/{conv.id}/notes", json={"text": "VIP"}, headers=auth(token))
    assert r.status_code == 201
    r = client.post(f"/api/v1/conversations/{conv.id}/state", json={"state": "closed"}, headers=auth(token))
    assert r.status_code == 200 and r.json()["state"] == "closed"
    with ctx.db.read() as s:
        assert s.scalars(select(ConversationNote)).first() is not None
        actions = set(s.scalars(select(AuditEntry.action)))
    assert {"inbox.list", "conversation.assign", "conversation.state"} <= actions


def test_a_viewer_token_cannot_read_conversations(ctx, client, crew: Crew):  # noqa: F811
    assert client.get("/api/v1/conversations", headers=auth(api_token(ctx, "viewer"))).status_code == 403


def test_broadcast_create_schedule_pause_resume_cancel_and_statistics(ctx, client, crew: Crew):  # noqa: F811
    token = api_token(ctx)
    r = client.post(
        "/api/v1/broadcasts", json={"name": "N", "topic": "angebote", "text": "Hallo"}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    later = {"at": "2099-01-01T09:00:00+01:00"}
    assert (
        client.post(f"/api/v1/broadcasts/{bid}/schedule", json=later, headers=auth(token)).status_code == 200
    )
    assert client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=auth(token)).json()["state"] == "cancelled"
    stats = client.get(f"/api/v1/broadcasts/{bid}", headers=auth(token)).json()
    assert "stats" in stats and stats["id"] == bid
    assert bid in [b["id"] for b in client.get("/api/v1/broadcasts", headers=auth(token)).json()]
    agent = api_token(ctx, "agent")
    assert client.post(f"/api/v1/broadcasts/{bid}/pause", headers=auth(agent)).status_code == 403


def test_privacy_requests_open_list_complete_and_audit_verifies(ctx, client, crew: Crew):  # noqa: F811
    token = api_token(ctx, "dpo")
    r = client.post(
        "/api/v1/privacy-requests", json={"kind": "access", "channel": "letter"}, headers=auth(token)
    )
    assert r.status_code == 201 and r.json()["state"] == "open"
    rid = r.json()["id"]
    assert rid in [x["id"] for x in client.get("/api/v1/privacy-requests", headers=auth(token)).json()]
    done = client.post(f"/api/v1/privacy-requests/{rid}/complete", json={}, headers=auth(token))
    assert done.status_code == 200 and done.json()["state"] == "done"
    audit = client.get("/api/v1/audit/verify", headers=auth(token)).json()
    assert audit["ok"] is True and audit["checked"] > 0
    assert client.get("/api/v1/templates", headers=auth(api_token(ctx))).status_code == 200


def test_conversation_labels_are_replaced(ctx, client, crew: Crew):  # noqa: F811
    say(ctx, crew, PHONE, "Hallo")
    conv = conversation_of(ctx, crew, PHONE)
    r = client.put(
        f"/api/v1/conversations/{conv.id}/labels",
        json={"labels": ["Order", "vip"]},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 200 and r.json()["labels"] == ["order", "vip"]
