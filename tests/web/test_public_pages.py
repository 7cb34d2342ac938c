"""The public pages a visitor opens: widget.js, the demo shop, its privacy policy (C1, U1, U2)."""

from __future__ import annotations


def test_widget_js_is_served_as_javascript_and_embeddable(client):
    r = client.get("/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert "x-frame-options" not in r.headers
    assert "data-konsent-tenant" in r.text
    # No cookies and no storage in the widget (C1).
    assert "document.cookie" not in r.text
    assert "localStorage" not in r.text and "sessionStorage" not in r.text
    assert 'credentials: "omit"' in r.text


def test_demo_page_embeds_the_widget_with_one_script_tag(client, demo):
    r = client.get("/demo", headers={"accept-language": "en"})
    assert r.status_code == 200
    assert r.text.count('<script src="/widget.js" data-konsent-tenant="demo" async></script>') == 1
    assert r.headers["x-frame-options"] == "DENY"
    assert "Demo GmbH" in r.text


def test_demo_privacy_page_in_german_and_english(client, demo):
    de = client.get("/demo/privacy?lang=de")
    en = client.get("/demo/privacy?lang=en")
    assert de.status_code == en.status_code == 200
    assert "Datenschutzerklärung" in de.text and "STOP" in de.text
    assert "Privacy policy" in en.text and "Withdrawal" in en.text


def test_root_redirects_to_admin_login(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 303, 307)
    assert r.headers["location"] == "/admin/login"
