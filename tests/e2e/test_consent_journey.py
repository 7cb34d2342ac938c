"""Issue 2 in a real browser: a visitor subscribes on /demo, confirms from the simulator phone,
and the admin downloads the consent proof (C1, C2, C3, U1)."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser


def test_visitor_subscribes_confirms_on_phone_and_admin_downloads_proof(live_server, browser_page):
    page = browser_page
    # 1. The demo shop embeds the widget; the visitor ticks one topic and submits.
    page.goto(f"{live_server.url}/demo")
    widget = page.get_by_test_id("konsent-widget")
    widget.wait_for()
    topic = page.get_by_test_id("topic-angebote")
    assert not topic.is_checked(), "topics must never be pre-ticked (C1)"
    topic.check()
    page.get_by_test_id("konsent-submit").click()
    link = page.get_by_test_id("konsent-deeplink")
    link.wait_for()
    code = page.get_by_test_id("konsent-code").inner_text().strip()
    assert re.fullmatch(r"KS[0-9A-Z]{10}", code)
    href = link.get_attribute("href")
    assert href and "/simulator" in href

    # 2. The deep link opens the simulator phone with the code prefilled; the contact sends it.
    page.goto(href)
    assert code in page.locator("#sim-text").input_value()
    page.locator("#sim-send").click()
    confirmation = page.locator("#sim-messages .sim-msg.in").first
    confirmation.wait_for()
    text = confirmation.inner_text()
    assert "Angebote" in text and "STOP" in text

    # 3. The admin signs in with the one-time password, must change it, then opens the contact.
    page.goto(f"{live_server.url}/admin/login")
    page.fill("#tenant", "demo")
    page.fill("#email", live_server.admin_email)
    page.fill("#password", live_server.admin_password)
    page.locator("form:has(#password) button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/admin/password.*"))
    page.fill("#current", live_server.admin_password)
    page.fill("#new", "a-new-long-password-1")
    page.fill("#repeat", "a-new-long-password-1")
    page.locator("form:has(#new) button[type=submit]").click()
    page.goto(f"{live_server.url}/admin/contacts")
    page.locator("a[href^='/admin/contacts/']").first.click()
    assert "newsletter:angebote" in page.content() or "Angebote" in page.content()

    # 4. "Download proof" gives the JSON document with the confirmed consent and its evidence.
    with page.expect_download() as dl:
        page.locator("a[href$='/proof.json']").click()
    doc = json.loads(dl.value.path().read_text(encoding="utf-8"))
    granted = [e for e in doc["ledger"] if e["action"] == "granted"]
    assert granted and granted[0]["purpose"] == "newsletter:angebote"
    evidence = granted[0]["payload"]
    assert evidence["method"] == "double_opt_in" and evidence["consent_text_hash"]
    assert evidence["source_url"].endswith("/demo")
    assert doc["chain_verification"]["ok"] is True
    # The readable proof shows the consent text exactly as the visitor saw it.
    page.goto(page.url.rstrip("/") + "/proof.html")
    body = page.locator("body").inner_text()
    assert "Ja, ich möchte von der Demo GmbH Nachrichten" in body
