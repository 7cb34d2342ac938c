"""Issue 12 in Chromium: the owner invites a person by one-time link, the invitee chooses a
password and finds password and 2FA in the user menu; the owner switches the channel off and
on again from its card (S3, U5)."""

from __future__ import annotations

import re

import pytest

from konsent.flows.organisation import staff
from tests.helpers import demo_tenant

pytestmark = pytest.mark.browser

OWNER_PASSWORD = "owner-password-123"
NEW_PASSWORD = "invitee-password-123"


def _sign_in(page, url: str, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/admin/login")
    page.fill("#tenant", "demo")
    page.fill("#email", email)
    page.fill("#password", password)
    page.locator("form:has(#password) button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/admin$"))


def test_invite_by_link_then_switch_the_channel_off_and_on(ctx, live_server, browser_page, tmp_path):
    with ctx.db.write() as s:
        staff.create_user(s, demo_tenant(ctx), "chefin@demo.example", OWNER_PASSWORD, "owner", name="Chefin")
    page = browser_page
    page.on("dialog", lambda d: d.accept())
    _sign_in(page, live_server.url, "chefin@demo.example", OWNER_PASSWORD)
    page.locator("nav a[href='/admin/staff']").click()
    page.fill("#inv-email", "neu@demo.example")
    page.fill("#inv-name", "Nina Neu")
    page.select_option("#inv-role", "agent")
    page.locator("form[action='/admin/staff/invite'] button[type=submit]").click()
    link = page.locator("#one-time-link").inner_text()
    assert link.startswith(f"{live_server.url}/admin/invite/")
    page.screenshot(path=str(tmp_path / "staff.png"), full_page=True)

    other = page.context.browser.new_context(locale="de-DE").new_page()
    other.goto(link)
    other.fill("#new", NEW_PASSWORD)
    other.fill("#repeat", NEW_PASSWORD)
    other.locator("button[type=submit]").click()
    other.wait_for_url(re.compile(r".*/admin/login.*"))
    assert other.input_value("#tenant") == "demo"
    _sign_in(other, live_server.url, "neu@demo.example", NEW_PASSWORD)
    other.locator("details.usermenu summary").click()
    assert other.locator("details.usermenu a[href='/admin/password']").is_visible()
    assert other.locator("details.usermenu a[href='/admin/security/totp']").is_visible()
    assert "Nina Neu" in other.locator("details.usermenu summary").inner_text()
    other.context.close()

    page.goto(f"{live_server.url}/admin/channels")
    card = page.locator("article.card").first
    card.locator("form[action$='/disable'] button").click()
    page.wait_for_url(re.compile(r".*done=disabled.*"))
    assert "ausgeschaltet" in page.locator("article.card").first.inner_text()
    page.screenshot(path=str(tmp_path / "channels.png"), full_page=True)
    page.locator("article.card").first.locator("form[action$='/enable'] button").click()
    page.wait_for_url(re.compile(r".*done=enabled.*"))
    assert "eingeschaltet" in page.locator("p.alert.ok").inner_text()
