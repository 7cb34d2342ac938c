"""A marketer's journey in a real browser: build a segment, preview it, send a broadcast to it; a
contact in the segment without consent for the topic receives nothing (#17 item 3, M5)."""

from __future__ import annotations

import re
import time

import pytest

from konsent.flows.contact_data import labels, profile
from konsent.flows.context import Konsent
from konsent.flows.organisation import staff
from tests.broadcast.seed import seed
from tests.e2e.test_inbox_browser import AGENT_PASSWORD, _sign_in
from tests.helpers import demo_tenant, phone_texts, sim_account

pytestmark = pytest.mark.browser

VIP_WITH_CONSENT = "+4915160000001"
VIP_WITHOUT_CONSENT = "+4915160000002"  # subscribed to another topic only
NOT_VIP = "+4915160000003"


def _setup(ctx: Konsent) -> None:
    tenant = demo_tenant(ctx)
    with ctx.db.write() as s:
        staff.create_user(s, tenant, "mara@demo.example", AGENT_PASSWORD, "admin", name="Mara")
        labels.define_label(s, tenant.id, "test", "VIP")
    acc = sim_account(ctx).id
    (vip,) = seed(ctx, acc, [VIP_WITH_CONSENT], name="Vera Vip")
    (outsider,) = seed(ctx, acc, [VIP_WITHOUT_CONSENT], topic="produktnews", name="Otto Ohne")
    seed(ctx, acc, [NOT_VIP], name="Nina Normal")
    with ctx.db.write() as s:
        for cid in (vip, outsider):
            profile.save(ctx, s, tenant.id, "test", cid, label_refs=["VIP"])


def test_marketer_builds_previews_and_sends_to_a_segment_and_no_consent_means_nothing(
    ctx, live_server, browser_page
):  # type: ignore[no-untyped-def]
    _setup(ctx)
    page = browser_page
    _sign_in(page, live_server.url, "mara@demo.example")

    page.goto(f"{live_server.url}/admin/segments")
    page.fill("#segment-form input[name=name]", "VIP-Kunden")
    page.check("#segment-form input[name=contact_labels][value=VIP]")
    page.locator("[data-testid=save-segment]").click()
    page.wait_for_url(re.compile(r".*/admin/segments$"))
    row = page.locator("tr", has_text="VIP-Kunden")
    row.locator("select[name=topic]").select_option("angebote")
    row.locator("button", has_text="Vorschau").click()
    assert page.locator("[data-testid=preview-count]").inner_text().startswith("1 ")
    assert page.locator("[data-testid=preview-sample]").inner_text() == "Vera Vip"  # not Otto: no consent

    page.goto(f"{live_server.url}/admin/broadcasts")
    page.fill("input[name=name]", "VIP-Abend")
    page.select_option("select[name=topic]", "angebote")
    page.fill("textarea[name=text]", "Exklusiv für Sie!")
    page.select_option("[data-testid=segment]", label="VIP-Kunden")
    page.locator("form[action='/admin/broadcasts'] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/admin/broadcasts/\d+$"))
    assert "1" in page.locator("text=Zielgruppe jetzt").inner_text()
    page.locator("form[action$='/send'] button", has_text="Jetzt senden").click()

    deadline = time.monotonic() + 20
    while not phone_texts(ctx, VIP_WITH_CONSENT) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert phone_texts(ctx, VIP_WITH_CONSENT) == ["Exklusiv für Sie!"]
    time.sleep(1.0)  # anything else would have arrived by now
    assert phone_texts(ctx, VIP_WITHOUT_CONSENT) == []
    assert phone_texts(ctx, NOT_VIP) == []
