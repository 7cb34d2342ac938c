"""REST API for topics, consent texts, company data and re-consent agrees with admin and CLI (#12)."""

from __future__ import annotations

from konsent.flows.organisation import staff, tenants
from tests.setup.support import SLUG, TEXT_DE_2, make_company, subscribe


def _auth(ctx, role: str = "admin") -> dict[str, str]:
    with ctx.db.write() as s:
        token = staff.create_api_token(s, tenants.tenant_by_slug(s, SLUG), f"t-{role}", role)
    return {"authorization": f"Bearer {token}"}


def test_topics_through_the_api(ctx, client):
    co = make_company(ctx)
    h = _auth(ctx)
    r = client.post("/api/v1/topics", json={"slug": "tee", "names": {"de": "Tee", "en": "Tea"}}, headers=h)
    assert r.status_code == 201 and r.json()["purpose"] == "newsletter:tee"
    assert (
        client.post("/api/v1/topics", json={"slug": "tee", "names": {"de": "Tee"}}, headers=h).status_code
        == 409
    )
    assert (
        client.post("/api/v1/topics", json={"slug": "Tee!", "names": {"de": "T"}}, headers=h).status_code
        == 422
    )
    assert client.post("/api/v1/topics", json={"slug": "x", "names": {}}, headers=h).status_code == 422
    r = client.patch("/api/v1/topics/tee", json={"names": {"de": "Grüner Tee"}, "move": -1}, headers=h)
    assert r.status_code == 200 and r.json()["names"] == {"de": "Grüner Tee", "en": "Tea"}
    assert client.patch("/api/v1/topics/tee", json={"archived": True}, headers=h).json()["active"] is False
    assert client.get("/api/v1/topics/nosuch", headers=h).status_code == 404
    subscribe(ctx, co, "+49 151 0000051", ["bohnen"])
    assert client.delete("/api/v1/topics/bohnen", headers=h).status_code == 409
    assert client.delete("/api/v1/topics/kurse", headers=h).status_code == 204


def test_consent_texts_through_the_api(ctx, client):
    make_company(ctx)
    h = _auth(ctx)
    r = client.post("/api/v1/consent-texts/de", json={"text": TEXT_DE_2}, headers=h)
    assert r.status_code == 201 and r.json()["version"] == 2
    assert [v["version"] for v in client.get("/api/v1/consent-texts/de", headers=h).json()] == [2, 1]
    assert "Röstereien" not in client.get("/api/v1/consent-texts/de/1", headers=h).json()["text"]
    diff = client.get("/api/v1/consent-texts/de/diff?from=1&to=2", headers=h).json()
    assert any(x["kind"] == "added" and "Röstereien" in x["text"] for x in diff["lines"])
    assert client.post("/api/v1/consent-texts/de", json={"text": ""}, headers=h).status_code == 422
    assert client.post("/api/v1/consent-texts/fr", json={"text": "Oui"}, headers=h).status_code == 422
    assert client.get("/api/v1/consent-texts/de/9", headers=h).status_code == 404


def test_company_and_reconsent_through_the_api(ctx, client):
    co = make_company(ctx)
    subscribe(ctx, co, "+49 151 0000052", ["bohnen"])
    h = _auth(ctx)
    body = client.get("/api/v1/company", headers=h).json()
    assert body["legal_name"] == "Kaffee GmbH" and {x["step"] for x in body["setup"]} >= {"company", "widget"}
    assert client.put("/api/v1/company", json={"time_zone": "Nowhere/City"}, headers=h).status_code == 422
    assert client.put("/api/v1/company", json={"time_zone": "Europe/Vienna"}, headers=h).json()[
        "time_zone"
    ] == ("Europe/Vienna")
    client.post("/api/v1/consent-texts/de", json={"text": TEXT_DE_2}, headers=h)
    r = client.post("/api/v1/reconsent", json={"locale": "de"}, headers=h)
    assert r.status_code == 201 and (r.json()["targeted"], r.json()["sent"]) == (1, 1)
    got = client.get(f"/api/v1/reconsent/{r.json()['id']}", headers=h).json()
    assert got["confirmed"] == 0 and got["pending"] == 1
    assert (
        client.post("/api/v1/reconsent", json={"locale": "de", "topics": ["nosuch"]}, headers=h).status_code
        == 422
    )


def test_setup_endpoints_refuse_roles_without_settings_permission(ctx, client):
    make_company(ctx)
    h = _auth(ctx, "agent")
    assert (
        client.post("/api/v1/topics", json={"slug": "tee", "names": {"de": "Tee"}}, headers=h).status_code
        == 403
    )
    assert client.post("/api/v1/consent-texts/de", json={"text": "x"}, headers=h).status_code == 403


def test_another_tenants_reconsent_campaign_and_topics_are_not_found(ctx, client):
    from konsent.flows.outbound import reconsent
    from tests.setup.support import bare_tenant

    co = make_company(ctx)
    subscribe(ctx, co, "+49 151 0000053", ["bohnen"])
    with ctx.db.write() as s:
        from konsent.flows.organisation import consent_texts

        t = tenants.tenant_by_slug(s, SLUG)
        consent_texts.publish(s, t, "de", TEXT_DE_2)
        campaign = reconsent.start(ctx, s, t, "de").id
    bare_tenant(ctx, "andere")
    with ctx.db.write() as s:
        other = {
            "authorization": "Bearer "
            + staff.create_api_token(s, tenants.tenant_by_slug(s, "andere"), "x", "owner")
        }
    assert client.get(f"/api/v1/reconsent/{campaign}", headers=other).status_code == 404
    assert client.get("/api/v1/topics/bohnen", headers=other).status_code == 404
    assert client.get("/api/v1/consent-texts/de/1", headers=other).status_code == 404
    assert client.patch("/api/v1/topics/bohnen", json={"archived": True}, headers=other).status_code == 404
    assert client.get(f"/api/v1/reconsent/{campaign}", headers=_auth(ctx)).status_code == 200
