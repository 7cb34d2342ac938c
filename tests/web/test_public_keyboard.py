"""The widget in a real browser: usable by keyboard alone, no cookies, no storage (C1, U2)."""

from __future__ import annotations

from sqlalchemy import func, select

from konsent.store.tables import OptInRequest
from tests.e2e.conftest import browser_page, live_server  # noqa: F401  (fixtures)


def test_visitor_signs_up_by_keyboard_alone_and_gets_no_cookie(ctx, live_server, browser_page):  # noqa: F811
    page = browser_page
    page.goto(live_server.url + "/demo")
    page.wait_for_selector('[data-testid="konsent-widget"] form')
    assert page.get_attribute('[data-testid="konsent-widget"]', "lang") == "de"  # browser locale de-DE
    assert not page.is_checked('[data-testid="topic-angebote"]')
    assert not page.is_checked('[data-testid="topic-produktnews"]')

    # Tab from the channel radio to the first topic, tick it with Space, go on to the button, press Enter.
    page.focus('[data-testid^="konsent-channel-"]')
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.testid") == "topic-angebote"
    page.keyboard.press("Space")
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "konsent-submit":
            break
    assert page.evaluate("document.activeElement.dataset.testid") == "konsent-submit"
    page.keyboard.press("Enter")

    page.wait_for_selector('[data-testid="konsent-deeplink"]')
    code = page.inner_text('[data-testid="konsent-code"]')
    assert code.startswith("KS")
    assert "/simulator?account=" in (page.get_attribute('[data-testid="konsent-deeplink"]', "href") or "")
    assert page.locator('[data-testid="konsent-qr"] svg').count() == 1
    assert page.evaluate("document.activeElement.className") == "konsent-result-title"
    assert page.context.cookies() == []
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(OptInRequest)) == 1
