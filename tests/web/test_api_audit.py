"""Every staff access to personal data through the API appends to the audit log (S4, invariant 3)."""

from __future__ import annotations

from sqlalchemy import select

from konsent.flows.privacy import proof
from konsent.store.tables import ApiToken, AuditEntry
from tests.flows.support import api_token, auth, contact_of
from tests.helpers import subscribe

PHONE = "+4915112345678"


def _audit(ctx) -> list[tuple[str, str, str]]:
    """What API callers did (the demo seed writes its own `system` entries)."""
    with ctx.db.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.actor.like("token:%")).order_by(AuditEntry.seq))
        return [(a.actor, a.action, a.subject) for a in rows]


def test_personal_reads_and_writes_are_audited_with_the_token_as_actor(ctx, demo, client):
    subscribe(ctx, PHONE, ["angebote"])
    cid = contact_of(ctx, PHONE).id
    token = api_token(ctx, "admin")
    with ctx.db.read() as s:
        actor = f"token:{s.scalars(select(ApiToken.id)).one()}"
    subject = f"contact:{cid}"
    assert client.get(f"/api/v1/contacts/{cid}", headers=auth(token)).status_code == 200
    assert client.get(f"/api/v1/contacts/{cid}/messages", headers=auth(token)).status_code == 200
    assert client.get(f"/api/v1/contacts/{cid}/proof", headers=auth(token)).status_code == 200
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": cid, "purpose": "service", "text": "Hallo"},
        headers=auth(token),
    )
    assert r.status_code == 202
    assert client.post(f"/api/v1/contacts/{cid}/withdraw", json={}, headers=auth(token)).status_code == 200
    assert _audit(ctx) == [
        (actor, "contact.view", subject),
        (actor, "contact.messages.view", subject),
        (actor, "consent.proof.export", subject),
        (actor, "message.send", subject),
        (actor, "consent.withdraw", subject),
    ]
    with ctx.db.read() as s:
        assert proof.verify_ledger(s, demo.tenant_id, "audit").ok


def test_viewer_sees_no_personal_data_and_leaves_no_personal_access_entry(ctx, demo, client):
    subscribe(ctx, PHONE, ["angebote"])
    cid = contact_of(ctx, PHONE).id
    token = api_token(ctx, "viewer")
    assert client.get(f"/api/v1/contacts/{cid}", headers=auth(token)).status_code == 200
    assert client.get("/api/v1/contacts", headers=auth(token)).status_code == 200
    assert _audit(ctx) == []


def test_refused_access_is_not_logged_as_access(ctx, demo, client):
    subscribe(ctx, PHONE, ["angebote"])
    cid = contact_of(ctx, PHONE).id
    assert client.get(f"/api/v1/contacts/{cid + 1}", headers=auth(api_token(ctx))).status_code == 404
    assert _audit(ctx) == []
