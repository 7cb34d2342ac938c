"""REST API for a shop: opt-in at checkout, contacts with evidence, consents, update, erase (M4, C2, C7)."""

from __future__ import annotations

from sqlalchemy import func, select

from konsent.flows.inbound import simulator
from konsent.store.tables import Contact
from tests.flows.support import api_token, auth, consent_states, contact_of
from tests.helpers import sim_account

PHONE = "+4915112340007"


def test_opt_in_from_checkout_returns_code_link_and_qr_and_subscribes_only_after_the_contact_sends_it(
    ctx, demo, client
):
    token = api_token(ctx)
    r = client.post(
        "/api/v1/optins",
        json={"topics": ["angebote"], "locale": "de", "source_url": "https://shop.example/thanks"},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    (sim,) = [c for c in r.json()["channels"] if c["channel"] == "simulator"]
    assert sim["code"] in sim["prefill"] and sim["deep_link"] and sim["qr_svg"].startswith("<svg")
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0  # nobody subscribed yet
    simulator.phone_send(ctx, sim["channel_account_id"], PHONE, sim["prefill"], locale="de")
    cid = contact_of(ctx, PHONE).id
    assert consent_states(ctx, cid) == {"newsletter:angebote": "active"}
    consents = client.get(f"/api/v1/contacts/{cid}/consents", headers=auth(token)).json()
    assert [(c["purpose"], c["status"]) for c in consents] == [("newsletter:angebote", "active")]


def test_create_contact_with_evidence_consents_once_per_idempotency_key(ctx, demo, client):
    token = api_token(ctx)
    body = {
        "channel_account_id": sim_account(ctx).id,
        "address": PHONE,
        "name": "Erika",
        "topics": ["angebote"],
        "consent_text_version": 1,
        "consent_time": "2026-11-30T14:03:00+01:00",
        "source": "checkout",
    }
    hdrs = {**auth(token), "Idempotency-Key": "contact-1"}
    first = client.post("/api/v1/contacts", json=body, headers=hdrs)
    second = client.post("/api/v1/contacts", json=body, headers=hdrs)
    assert first.status_code == 201, first.text
    assert first.json() == second.json() and first.json()["outcome"] == "consented"
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1
    cid = first.json()["contact_id"]
    assert consent_states(ctx, cid) == {"newsletter:angebote": "active"}


def test_contact_without_evidence_is_service_only(ctx, demo, client):
    body = {"channel_account_id": sim_account(ctx).id, "address": PHONE, "topics": ["angebote"]}
    r = client.post("/api/v1/contacts", json=body, headers=auth(api_token(ctx)))
    assert r.status_code == 201 and r.json()["outcome"] == "service_only"
    assert consent_states(ctx, r.json()["contact_id"]) == {}


def test_update_and_erase_a_contact(ctx, demo, client):
    token = api_token(ctx)
    body = {"channel_account_id": sim_account(ctx).id, "address": PHONE, "name": "Erika"}
    cid = client.post("/api/v1/contacts", json=body, headers=auth(token)).json()["contact_id"]
    r = client.patch(f"/api/v1/contacts/{cid}", json={"name": "Erika M."}, headers=auth(token))
    assert r.status_code == 200 and r.json()["changed"]
    assert client.get(f"/api/v1/contacts/{cid}", headers=auth(token)).json()["name"] == "Erika M."
    gone = client.post(f"/api/v1/contacts/{cid}/erase", json={"channel": "email"}, headers=auth(token))
    assert gone.status_code == 200
    with ctx.db.read() as s:
        assert s.get(Contact, cid).erased_at is not None
    again = client.post("/api/v1/contacts", json=body, headers=auth(token))
    assert again.json()["outcome"] == "rejected"  # an erased address is suppressed


def test_contacts_are_found_by_address_and_not_by_another(ctx, demo, client):
    token = api_token(ctx)
    body = {"channel_account_id": sim_account(ctx).id, "address": PHONE}
    cid = client.post("/api/v1/contacts", json=body, headers=auth(token)).json()["contact_id"]
    found = client.get("/api/v1/contacts", params={"address": "0151 12340007"}, headers=auth(token)).json()
    assert [c["id"] for c in found] == [cid]
    for other in ("+4915199999999", "not a number"):
        assert client.get("/api/v1/contacts", params={"address": other}, headers=auth(token)).json() == []
