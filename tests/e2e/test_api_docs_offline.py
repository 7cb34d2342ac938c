"""In a browser: the API docs render from konsent alone (every other host blocked), and an admin adds
a webhook endpoint and sees its secret once (M4, S7)."""

from __future__ import annotations

import re

from tests.e2e.conftest import LiveServer


def test_swagger_ui_renders_offline_and_the_webhooks_page_works(
    live_server: LiveServer, browser_page, tmp_path
):
    page = browser_page
    outside: list[str] = []

    def only_konsent(route):  # type: ignore[no-untyped-def]
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_konsent)
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector(".opblock", timeout=15_000)  # the operations, drawn by Swagger UI
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    assert page.locator(".opblock").count() > 40
    assert page.locator("button.authorize").count() == 1  # the bearer security scheme
    assert outside == []

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
    page.goto(f"{live_server.url}/admin/webhooks")
    page.fill("input[name=url]", "https://crm.example.com/konsent")
    page.check("input[value='consent.withdrawn']")
    page.locator("form[action='/admin/webhooks'] button[type=submit]").click()
    assert re.search(r"whsec_[A-Za-z0-9_-]{20,}", page.content())
    page.screenshot(path=str(tmp_path / "webhooks.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/webhooks")
    assert "crm.example.com/konsent" in page.content() and "whsec_" not in page.content()
    assert outside == []
