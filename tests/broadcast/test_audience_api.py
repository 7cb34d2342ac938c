"""REST API for segments, the broadcast proof and contact pressure (#17 items 3 and 4, M5, M4)."""

from __future__ import annotations

from konsent.flows.outbound import broadcast as bc
from tests.broadcast.seed import seed
from tests.conftest import drain
from tests.flows.support import api_token, auth
from tests.helpers import phone_texts, sim_account


def test_segment_through_the_api_from_definition_to_proof(ctx, demo, client):
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915150000001"], locale="de", name="Erika Muster")
    seed(ctx, acc, ["+4915150000002"], locale="en")
    seed(ctx, acc, ["+4915150000003"], locale="de", consent=False)
    h = auth(api_token(ctx))
    r = client.post("/api/v1/segments", json={"name": "Deutsch", "definition": {"locale": "de"}}, headers=h)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    p = client.post("/api/v1/segments/preview", json={"topic": "angebote", "segment_id": sid}, headers=h)
    assert p.json() == {"count": 1, "sample": []}
    named = client.post(
        "/api/v1/segments/preview",
        json={"topic": "angebote", "segment_id": sid, "include_names": True},
        headers=h,
    )
    assert named.json() == {"count": 1, "sample": ["Erika Muster"]}
    b = client.post(
        "/api/v1/broadcasts",
        json={"name": "Herbst", "topic": "angebote", "text": "Hallo", "segment_id": sid},
        headers=h,
    )
    assert b.status_code == 201, b.text
    assert b.json()["segment"] == {"locale": "de", "segment": {"id": sid, "name": "Deutsch"}}
    bid = b.json()["id"]
    assert client.post(f"/api/v1/broadcasts/{bid}/schedule", json={}, headers=h).status_code == 200
    bc.run_due(ctx)
    drain(ctx)
    assert phone_texts(ctx, "+4915150000001") == ["Hallo"]
    assert phone_texts(ctx, "+4915150000003") == []
    proof = client.get(f"/api/v1/broadcasts/{bid}/proof", headers=h).json()
    assert proof["chosen_by"]["segment"]["criteria"] == ["language: de"]
    assert [r["status"] for r in proof["recipients"]] == ["sent"]


def test_bad_definitions_are_422_with_the_reason_and_viewers_get_no_names(ctx, demo, client):
    h = auth(api_token(ctx))
    for definition in ({"where": "1=1"}, {"replied_within_days": -1}, {"topics": ["gibtsnicht"]}):
        r = client.post("/api/v1/segments", json={"name": "X", "definition": definition}, headers=h)
        assert r.status_code == 422 and r.json()["code"] == "invalid_input", r.text
    r = client.post(
        "/api/v1/broadcasts",
        json={"name": "X", "topic": "angebote", "text": "x", "segment": {"read_last_broadcast": "ja"}},
        headers=h,
    )
    assert r.status_code == 422
    viewer = auth(api_token(ctx, "viewer"))
    r = client.post(
        "/api/v1/segments/preview", json={"topic": "angebote", "include_names": True}, headers=viewer
    )
    assert r.status_code == 403
    assert client.post("/api/v1/segments", json={"name": "X"}, headers=viewer).status_code == 403
    assert client.get("/api/v1/segments/999", headers=h).status_code == 404


def test_contact_pressure_through_the_api(ctx, demo, client):
    h = auth(api_token(ctx))
    assert client.get("/api/v1/contact-pressure", headers=h).json()["cap_messages"] == 0
    body = {"cap_messages": 3, "cap_days": 7, "quiet_start": "21:00", "quiet_end": "08:00"}
    assert client.put("/api/v1/contact-pressure", json=body, headers=h).json() == body
    bad = client.put("/api/v1/contact-pressure", json={**body, "quiet_end": "8 Uhr"}, headers=h)
    assert bad.status_code == 422
    assert client.get("/api/v1/contact-pressure", headers=h).json() == body
