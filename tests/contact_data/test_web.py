"""Admin pages and REST API of contact labels, attributes, search and CSV export (M5, M4, S3, S4)."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from konsent.flows.contact_data import attributes, labels, profile
from konsent.store.tables import AuditEntry, ContactAttribute, ContactLabel
from tests.contact_data.util import make_contact, other_tenant
from tests.flows.support import api_token, auth
from tests.helpers import demo_tenant
from tests.web.test_admin_auth import as_role

ACTOR = "staff:1"


@pytest.fixture
def book(ctx, demo):
    """Two demo contacts, a label and two attributes; a contact of another tenant."""
    tid = demo_tenant(ctx).id
    erika = make_contact(ctx, tid, "+4915111111111", "Erika Mustermann")
    evil = make_contact(ctx, tid, "+4915122222222", '=HYPERLINK("http://x")')
    theirs = make_contact(ctx, other_tenant(ctx), "+4915133333333", "Erika Fremd")
    with ctx.db.write() as s:
        vip = labels.define_label(s, tid, ACTOR, "VIP").id
        attributes.define_attribute(
            s, tid, ACTOR, key="city", name="Stadt", type="text", purpose="Events", retention="until_erasure"
        )
        attributes.define_attribute(
            s, tid, ACTOR, key="tier", name="Stufe", type="choice", options=["Gold", "Silber"],
            purpose="Angebote", retention="after_set", retention_days=365,
        )  # fmt: skip
    with ctx.db.write() as s:
        profile.save(ctx, s, tid, ACTOR, evil, values={"city": "-2+3"})
    return {"tid": tid, "erika": erika, "evil": evil, "theirs": theirs, "vip": vip}


def _last_audit(ctx, action):
    with ctx.db.read() as s:
        return s.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq.desc())
        ).first()


def test_contact_page_saves_name_labels_and_attributes_with_one_save(ctx, book, client):
    token = as_role(ctx, client, "admin")
    cid = book["erika"]
    page = client.get(f"/admin/contacts/{cid}", headers={"accept-language": "de"})
    assert page.status_code == 200
    assert (
        'name="attr:tier"' in page.text
        and 'name="label"' in page.text
        and "Name, Labels und Attribute" in page.text
    )
    r = client.post(
        f"/admin/contacts/{cid}/data",
        data={
            "csrf_token": token,
            "name": "Erika Muster",
            "label": str(book["vip"]),
            "attr:city": "Köln",
            "attr:tier": "Gold",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with ctx.db.read() as s:
        data = profile.read(ctx, s, book["tid"], cid)
    assert data.labels == [{"id": book["vip"], "name": "VIP"}]
    assert data.attributes == {"city": "Köln", "tier": "Gold"}
    assert _last_audit(ctx, "contact.edit").payload["fields"] == [
        "name",
        "labels",
        "attribute:city",
        "attribute:tier",
    ]


def test_a_bad_value_on_the_contact_page_answers_4xx_keeps_the_typing_and_saves_nothing(ctx, book, client):
    token = as_role(ctx, client, "admin")
    cid = book["erika"]
    r = client.post(
        f"/admin/contacts/{cid}/data",
        data={"csrf_token": token, "label": str(book["vip"]), "attr:city": "Bonn", "attr:tier": "Platin"},
        headers={"accept-language": "de"},
    )
    assert r.status_code == 422
    assert "tier: keine der Optionen." in r.text and 'value="Bonn"' in r.text
    with ctx.db.read() as s:
        assert s.scalars(select(ContactLabel).where(ContactLabel.contact_id == cid)).all() == []
        assert s.scalars(select(ContactAttribute).where(ContactAttribute.contact_id == cid)).all() == []


def test_viewers_may_not_save_contact_data_or_search(ctx, book, client):
    token = as_role(ctx, client, "viewer")
    r = client.post(f"/admin/contacts/{book['erika']}/data", data={"csrf_token": token, "attr:city": "X"})
    assert r.status_code == 403
    assert client.get("/admin/contacts?q=erika").status_code == 403


def test_admin_search_lists_only_the_tenants_matches_and_is_audited_without_the_term(ctx, book, client):
    as_role(ctx, client, "admin")
    r = client.get("/admin/contacts?q=erika", headers={"accept-language": "en"})
    assert r.status_code == 200
    assert f"/admin/contacts/{book['erika']}" in r.text and f'/admin/contacts/{book["theirs"]}"' not in r.text
    assert "1 contacts found." in r.text
    entry = _last_audit(ctx, "contacts.search")
    assert (entry.payload["kinds"], entry.payload["found"]) == (["text"], 1)
    assert "erika" not in str(entry.payload).lower()
    short = client.get("/admin/contacts?q=er", headers={"accept-language": "en"})
    assert short.status_code == 422 and "at least 3 characters" in short.text


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("admin", 200), ("dpo", 200), ("agent", 403), ("viewer", 403)]
)
def test_csv_export_is_allowed_to_owner_admin_and_dpo_only(ctx, book, client, role, status):
    token = as_role(ctx, client, role)
    r = client.post("/admin/contact-export", data={"csrf_token": token, "field": ["id", "name"]})
    assert r.status_code == status
    assert client.get("/admin/contact-export").status_code == status
    assert (
        client.get("/api/v1/contact-export?fields=id", headers=auth(api_token(ctx, role))).status_code
        == status
    )


def test_csv_export_has_the_chosen_fields_is_injection_safe_and_audited(ctx, book, client):
    token = as_role(ctx, client, "dpo")
    r = client.post(
        "/admin/contact-export",
        data={"csrf_token": token, "field": ["id", "name", "addresses", "attribute:city"]},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["id", "name", "addresses", "attribute:city"]
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {str(book["erika"]), str(book["evil"])}  # never the other tenant's contact
    assert by_id[str(book["erika"])][1:3] == ["Erika Mustermann", "'+4915111111111"]
    assert by_id[str(book["evil"])][1] == '\'=HYPERLINK("http://x")'
    assert by_id[str(book["evil"])][3] == "'-2+3"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    entry = _last_audit(ctx, "contacts.export")
    assert (
        entry.payload["fields"] == ["id", "name", "addresses", "attribute:city"]
        and entry.payload["rows"] == 2
    )
    assert entry.actor.startswith("user:")


def test_csv_export_refuses_unknown_fields_with_4xx(ctx, book, client):
    token = as_role(ctx, client, "admin")
    assert (
        client.post("/admin/contact-export", data={"csrf_token": token, "field": ["password"]}).status_code
        == 422
    )
    assert client.post("/admin/contact-export", data={"csrf_token": token}).status_code == 422
    r = client.get("/api/v1/contact-export?fields=id,attribute:nope", headers=auth(api_token(ctx)))
    assert r.status_code == 422


def test_definitions_page_creates_labels_and_attributes_and_refuses_bad_ones(ctx, demo, client):
    token = as_role(ctx, client, "admin")
    assert client.get("/admin/contact-data").status_code == 200
    r = client.post(
        "/admin/contact-data/labels", data={"csrf_token": token, "name": "Messe 2026"}, follow_redirects=False
    )
    assert r.status_code == 303
    r = client.post(
        "/admin/contact-data/attributes",
        data={
            "csrf_token": token,
            "key": "shoe_size",
            "name": "Schuhgröße",
            "type": "number",
            "purpose": "Beratung",
            "retention": "after_last_contact",
            "retention_days": "365",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    bad = client.post(
        "/admin/contact-data/attributes",
        data={
            "csrf_token": token,
            "key": "x",
            "type": "choice",
            "purpose": "y",
            "retention": "until_erasure",
        },
    )
    assert bad.status_code == 422
    with ctx.db.read() as s:
        assert [d.key for d in attributes.list_attributes(s, demo_tenant(ctx).id)] == ["shoe_size"]
    fresh = type(client)(client.app)
    t2 = as_role(ctx, fresh, "agent")
    assert fresh.post("/admin/contact-data/labels", data={"csrf_token": t2, "name": "X"}).status_code == 403


def test_api_defines_sets_reads_and_searches_and_refuses_bad_values(ctx, book, client):
    h = auth(api_token(ctx))
    r = client.post(
        "/api/v1/contact-attributes",
        json={"key": "birthday", "name": "Geburtstag", "type": "date", "purpose": "Glückwunsch",
              "retention": "after_last_contact", "retention_days": 30},
        headers=h,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    cid = book["erika"]
    ok = client.put(
        f"/api/v1/contacts/{cid}/data",
        json={"labels": ["VIP"], "attributes": {"birthday": "1980-12-31", "tier": "Silber"}},
        headers=h,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["attributes"] == {"birthday": "1980-12-31", "tier": "Silber"}
    for bad in ({"birthday": "gestern"}, {"tier": "Platin"}, {"nope": "x"}):
        r = client.put(f"/api/v1/contacts/{cid}/data", json={"attributes": bad}, headers=h)
        assert r.status_code == 422, bad
    assert (
        client.put(f"/api/v1/contacts/{cid}/data", json={"labels": ["Unbekannt"]}, headers=h).status_code
        == 422
    )
    assert client.get(f"/api/v1/contacts/{cid}/data", headers=h).json()["labels"] == [
        {"id": book["vip"], "name": "VIP"}
    ]
    found = client.get("/api/v1/contact-search?label=VIP", headers=h).json()
    assert found == [{"id": cid, "name": "Erika Mustermann", "labels": ["VIP"]}]
    assert client.get("/api/v1/contact-search?attribute=tier&value=silber", headers=h).json()[0]["id"] == cid
    assert client.get("/api/v1/contact-search?q=ab", headers=h).status_code == 422
    # another tenant's contact is not found, and its data is 404
    assert client.get(f"/api/v1/contacts/{book['theirs']}/data", headers=h).status_code == 404
    assert client.get("/api/v1/contact-search?q=fremd", headers=h).json() == []


def test_a_token_scoped_to_messages_cannot_reach_labels_attributes_or_search(ctx, book, client):
    from konsent.flows.organisation import staff, tenants

    with ctx.db.write() as s:
        token = staff.create_api_token(
            s, tenants.tenant_by_slug(s, "demo"), "narrow", "admin", scopes=["messages:write"]
        )
    for path in ("/api/v1/contact-labels", "/api/v1/contact-attributes", "/api/v1/contact-search?q=erika"):
        assert client.get(path, headers=auth(token)).status_code == 403, path
