"""The template picker in a real browser: choosing a template shows one field per variable and
a live preview; sending queues exactly that template (M1, CH3)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.domain.events import InboundMessage
from konsent.domain.templates import TemplateSpec
from konsent.flows.context import Konsent
from konsent.flows.inbound.receive import handle_event
from konsent.flows.organisation import staff, tenants
from konsent.flows.outbound import templates
from konsent.store.tables import Conversation, Message
from konsent.store.types import utcnow
from konsent.web.deps import Caller
from tests.e2e.test_inbox_browser import AGENT_PASSWORD, _sign_in
from tests.helpers import demo_tenant

pytestmark = pytest.mark.browser


def _setup(ctx: Konsent) -> int:
    tenant = demo_tenant(ctx)
    with ctx.db.write() as s:
        staff.create_user(s, tenant, "ada@demo.example", AGENT_PASSWORD, "admin", name="Ada")
        acc = tenants.create_channel_account(
            ctx, s, s.get(tenants.Tenant, tenant.id), "whatsapp", "WhatsApp", provider_ref="e2e",
            secrets_={"access_token": "t", "app_secret": "a", "verify_token": "v"},
        )  # fmt: skip
        owner = Caller(tenant.id, "owner", "test")
        body = "Hallo {{1}}, Ihre Bestellung {{2}} ist unterwegs."
        templates.save_template(
            ctx, s, owner, acc.id, TemplateSpec("order_update", "de", "UTILITY", "APPROVED", body)
        )
        templates.save_template(ctx, s, owner, acc.id, TemplateSpec("draft", "de", "UTILITY", "PENDING", "x"))
        acc_id = acc.id
    handle_event(
        ctx, acc_id, InboundMessage("wamid.e2e", "+491705555555", utcnow() - timedelta(hours=30), text="Hi")
    )
    with ctx.db.read() as s:
        return s.scalars(select(Conversation.id).where(Conversation.channel_account_id == acc_id)).one()


def test_picker_shows_fields_and_a_live_preview_then_sends(ctx, live_server, browser_page):  # type: ignore[no-untyped-def]
    conv = _setup(ctx)
    page = browser_page
    _sign_in(page, live_server.url, "ada@demo.example")
    page.goto(f"{live_server.url}/admin/inbox/{conv}")
    assert page.locator("#tpl-choice option").all_inner_texts()[1:] == ["order_update · de · UTILITY"]
    assert not page.locator("[data-no-js-only]").is_visible()  # with JS, choosing needs no reload
    page.select_option("#tpl-choice", label="order_update · de · UTILITY")
    assert page.locator("#tpl-vars input").count() == 2
    page.fill("#tpl-var-1", "Erika")
    assert page.locator("#tpl-preview").inner_text() == "Hallo Erika, Ihre Bestellung [2] ist unterwegs."
    page.fill("#tpl-var-2", "A-17")
    assert page.locator("#tpl-preview").inner_text() == "Hallo Erika, Ihre Bestellung A-17 ist unterwegs."
    page.locator("#tpl-send button[type=submit]").click()
    page.wait_for_url(re.compile(r".*notice=sent.*"))
    with ctx.db.read() as s:
        sent = s.scalars(select(Message).where(Message.template_id.is_not(None))).one()
        assert sent.template_version == 1 and sent.conversation_id == conv
