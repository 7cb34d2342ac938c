"""Contact-facing pages speak the contact's language and are styled like the widget (#12 item 7)."""

from __future__ import annotations

import re

from tests.helpers import phone_texts
from tests.privacy.util import PHONE, say, subscribed_contact

EXPORT = re.compile(r"http://testserver(/privacy/export/[A-Za-z0-9_-]+)")
PORTAL = re.compile(r"http://testserver(/privacy/[A-Za-z0-9_-]{20,})")
ENGLISH_BROWSER = {"accept-language": "en-US,en;q=0.9"}


def _link(ctx, keyword: str, pattern: re.Pattern[str]) -> str:
    say(ctx, keyword)
    found = pattern.search(phone_texts(ctx, PHONE)[-1])
    assert found, phone_texts(ctx, PHONE)[-1]
    return found.group(1)


def test_the_export_page_is_german_for_a_german_contact_whatever_the_browser_says(ctx, demo, client):
    subscribed_contact(ctx, locale="de")
    page = client.get(_link(ctx, "MEINE DATEN", EXPORT), headers=ENGLISH_BROWSER)
    assert page.status_code == 200 and '<html lang="de">' in page.text
    assert "Ihre Daten" in page.text and "Your data" not in page.text


def test_the_self_service_page_is_german_for_a_german_contact(ctx, demo, client):
    subscribed_contact(ctx, locale="de")
    path = _link(ctx, "DATENSCHUTZ", PORTAL)
    page = client.get(path, headers=ENGLISH_BROWSER)
    assert '<html lang="de">' in page.text
    assert (
        '<html lang="en">' in client.get(path + "?lang=en", headers=ENGLISH_BROWSER).text
    )  # explicit choice wins


def test_an_english_contact_gets_english_pages(ctx, demo, client):
    subscribed_contact(ctx, locale="en")
    page = client.get(_link(ctx, "MY DATA", EXPORT), headers={"accept-language": "de"})
    assert '<html lang="en">' in page.text and "Your data" in page.text


def test_contact_pages_are_styled_like_the_widget(client):
    css = client.get("/static/public.css").text
    assert "main.narrow" in css and "border-radius: .75rem" in css and "#1d4ed8" in css
