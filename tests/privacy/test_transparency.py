"""Privacy-notice block and Art. 30 record from the tenant's real configuration (T1, T2, T3)."""

from __future__ import annotations

from konsent.flows.organisation import tenants
from konsent.flows.privacy import retention, transparency
from tests.helpers import demo_tenant


def test_notice_names_channels_transfers_purposes_and_retention_in_both_languages(ctx, demo):
    """T1: generated from the configuration; a changed rule or a new topic shows up."""
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, "demo")
        tenants.add_topic(s, t, "events", {"de": "Veranstaltungen", "en": "Events"})
        retention.set_rule(s, t.id, "messages", 30 * 24, "user:1")
    with ctx.db.read() as s:
        t = demo_tenant(ctx)
        de = transparency.privacy_notice(ctx, s, t, "de")
        en = transparency.privacy_notice(ctx, s, t, "en")
    assert "Demo GmbH" in de and "Art. 6 Abs. 1 lit. a" in de and "Veranstaltungen" in de
    # the adapter's declared safeguard, in the document's language (#12: no English in the German notice)
    assert "Simulator" in de and "keine Übermittlung" in de and "no transfer" not in de
    assert "no transfer" in en
    assert "30 Tage" in de and "48 Stunden" in de and "3 Jahre" in de
    assert "Art. 6(1)(a)" in en and "Events" in en and "30 days" in en and "MY DATA" in en


def test_art30_record_markdown_and_html(ctx, demo):
    """T2: the record lists controller, purposes, recipients, safeguards, periods, measures."""
    with ctx.db.read() as s:
        t = demo_tenant(ctx)
        md = transparency.art30_record(ctx, s, t, "de")
        html = transparency.markdown_to_html(md)
    for needle in (
        "Art. 30",
        "Demo GmbH",
        "Empfänger",
        "Simulator",
        "Löschfristen",
        "90 Tage",
        "Crypto-Shredding",
    ):
        assert needle in md, needle
    assert html.startswith("<h1>") and "<table>" in html and "<th>Verantwortlicher</th>" in html


def test_info_keyword_answers_with_notice_and_link(ctx, demo):
    """T3: INFO → short notice, the privacy policy link and a personal self-service link."""
    from tests.helpers import phone_texts
    from tests.privacy.util import PHONE, say

    say(ctx, "INFO", locale="en")
    reply = phone_texts(ctx, PHONE)[-1]
    assert "Demo GmbH" in reply and "/demo/privacy" in reply and "/privacy/" in reply
