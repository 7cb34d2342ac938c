"""The admin of a new company: setup sequence, topics, consent texts, re-consent pages (#12 items 1-3)."""

from __future__ import annotations

import html

from fastapi.testclient import TestClient

from konsent.flows.organisation import consent_texts, tenants
from tests.conftest import drain
from tests.setup.support import EMAIL, PASSWORD, SLUG, TEXT_DE_2, bare_tenant, make_company, subscribe
from tests.web.test_admin_auth import form_token, login


def _signed_in(client: TestClient) -> str:
    r = login(client, EMAIL, PASSWORD, tenant=SLUG)
    assert r.status_code == 200 and r.url.path == "/admin", r.text
    return form_token(r.text)


COMPANY = {
    "name": "Kaffee GmbH", "legal_name": "Kaffee GmbH", "address": "Röstweg 1, 20095 Hamburg",
    "representative": "Erika Bohne", "dpo_contact": "", "supervisory_authority": "HmbBfDI",
    "privacy_url": "https://kaffee.example/datenschutz", "privacy_version": "2026-12",
    "default_locale": "de", "time_zone": "Europe/Berlin",
}  # fmt: skip


def test_the_dashboard_of_a_new_tenant_shows_the_setup_checklist_until_complete(ctx, client):
    bare_tenant(ctx)
    _signed_in(client)
    page = client.get("/admin", headers={"accept-language": "de"}).text
    assert 'data-testid="setup-checklist"' in page and "Unternehmen und Datenschutzerklärung" in page
    assert 'href="/try/kaffee"' in page and 'href="/demo"' not in page
    co = make_company(ctx, "zweite")  # another tenant's setup changes nothing here
    assert 'data-testid="setup-checklist"' in client.get("/admin").text
    assert co.tenant_id


def test_the_checklist_disappears_when_the_setup_is_complete(ctx, client):
    co = make_company(ctx)
    subscribe(ctx, co, "+49 151 0000041", ["bohnen"])
    _signed_in(client)
    assert 'data-testid="setup-checklist"' not in client.get("/admin").text


def test_saving_company_data_in_the_sequence_goes_on_to_the_topics(ctx, client):
    bare_tenant(ctx)
    token = _signed_in(client)
    r = client.post(
        "/admin/settings/company?setup=1", data={**COMPANY, "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/topics?setup=1"
    page = client.get("/admin/topics?setup=1", headers={"accept-language": "de"}).text
    assert "Schritt 2 von 5" in page


def test_bad_company_data_is_shown_again_with_the_message_and_not_saved(ctx, client):
    bare_tenant(ctx)
    token = _signed_in(client)
    r = client.post(
        "/admin/settings/company", data={**COMPANY, "time_zone": "Mars/Olympus", "csrf_token": token},
        headers={"accept-language": "de"},
    )  # fmt: skip
    assert r.status_code == 422 and "Unbekannte Zeitzone" in r.text and "Röstweg 1" in r.text
    assert "Röstweg" not in client.get("/admin/settings/company").text


def test_topics_page_creates_renames_and_archives(ctx, client):
    co = make_company(ctx)
    token = _signed_in(client)
    r = client.post(
        "/admin/topics", data={"csrf_token": token, "slug": "tee", "name_de": "Tee", "name_en": "Tea"}
    )
    assert r.status_code == 200 and 'data-testid="topic-tee"' in r.text
    dup = client.post("/admin/topics", data={"csrf_token": token, "slug": "tee", "name_de": "Tee"},
                      headers={"accept-language": "de"})  # fmt: skip
    assert dup.status_code == 409 and "gibt es bereits" in dup.text
    client.post(
        "/admin/topics/tee", data={"csrf_token": token, "name_de": "Grüner Tee", "name_en": "Green tea"}
    )
    client.post("/admin/topics/tee/archive", data={"csrf_token": token})
    with ctx.db.read() as s:
        assert [t.slug for t in tenants.topics(s, co.tenant_id)] == ["bohnen", "kurse"]
    assert "Grüner Tee" in client.get("/admin/topics", headers={"accept-language": "de"}).text


def test_a_topic_with_consents_offers_no_delete_and_refuses_one(ctx, client):
    co = make_company(ctx)
    subscribe(ctx, co, "+49 151 0000042", ["bohnen"])
    token = _signed_in(client)
    assert "/admin/topics/bohnen/delete" not in client.get("/admin/topics").text
    r = client.post("/admin/topics/bohnen/delete", data={"csrf_token": token})
    assert r.status_code == 409


def test_consent_text_page_publishes_shows_versions_and_diff(ctx, client):
    make_company(ctx)
    token = _signed_in(client)
    r = client.post("/admin/consent-texts", data={"csrf_token": token, "locale": "de", "text": TEXT_DE_2})
    assert r.status_code == 200 and "v2" in r.text
    v1 = client.get("/admin/consent-texts/de/1")
    assert "Ja, ich möchte Nachrichten der Kaffee GmbH erhalten." in v1.text
    diff = client.get("/admin/consent-texts/de/diff?old=1&new=2")
    assert "<ins>" in diff.text and "Röstereien" in diff.text
    empty = client.post("/admin/consent-texts", data={"csrf_token": token, "locale": "de", "text": " "},
                        headers={"accept-language": "de"})  # fmt: skip
    assert empty.status_code == 422 and "darf nicht leer sein" in empty.text
    assert client.get("/admin/consent-texts/fr/1").status_code == 422


def test_reconsent_from_the_admin_shows_progress(ctx, client):
    co = make_company(ctx)
    subscribe(ctx, co, "+49 151 0000043", ["bohnen"])
    with ctx.db.write() as s:
        consent_texts.publish(s, tenants.tenant_by_slug(s, SLUG), "de", TEXT_DE_2)
    token = _signed_in(client)
    page = client.get("/admin/consent-texts").text
    assert 'data-testid="reconsent-de"' in page
    r = client.post("/admin/reconsent", data={"csrf_token": token, "locale": "de"})
    assert r.status_code == 200 and r.url.path.startswith("/admin/reconsent/")
    assert 'data-testid="rc-sent">1<' in r.text and 'data-testid="rc-confirmed">0<' in r.text
    drain(ctx)


def test_setup_pages_need_the_settings_permission(ctx, client):
    bare_tenant(ctx)
    from konsent.flows.organisation import staff

    with ctx.db.write() as s:
        staff.create_user(s, tenants.tenant_by_slug(s, SLUG), "agent@kaffee.example", PASSWORD, "agent")
    login(client, "agent@kaffee.example", PASSWORD, tenant=SLUG)
    for path in ("/admin/setup", "/admin/topics", "/admin/consent-texts", "/admin/settings/company"):
        assert client.get(path).status_code == 403, path


def test_widget_step_shows_the_snippet_and_a_test_page(ctx, client):
    co = make_company(ctx)
    _signed_in(client)
    page = html.unescape(client.get("/admin/setup/widget").text)
    assert 'data-konsent-tenant="kaffee"' in page and "/try/kaffee" in page
    assert f"/simulator?account={co.account_id}" in page
    tried = client.get("/try/kaffee")
    assert tried.status_code == 200 and 'data-konsent-tenant="kaffee"' in tried.text
    assert client.get("/try/nosuchtenant").status_code == 404


def test_reconsent_can_be_limited_to_ticked_topics(ctx, client):
    co = make_company(ctx)
    subscribe(ctx, co, "+49 151 0000044", ["bohnen"])
    subscribe(ctx, co, "+49 151 0000045", ["kurse"])
    with ctx.db.write() as s:
        consent_texts.publish(s, tenants.tenant_by_slug(s, SLUG), "de", TEXT_DE_2)
    token = _signed_in(client)
    r = client.post("/admin/reconsent", data={"csrf_token": token, "locale": "de", "topic": ["kurse"]})
    assert 'data-testid="rc-sent">1<' in r.text
