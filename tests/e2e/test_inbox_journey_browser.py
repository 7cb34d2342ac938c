"""#17 in a real browser: an agent works a conversation from the list to resolved — keyboard, a file
upload, a label, one Save — and the inbox fits a phone (M1, U2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.store.tables import Conversation, ConversationLabel, InboxAttachment
from tests.e2e.test_inbox_browser import _agent, _conversation, _sign_in
from tests.helpers import sim_account

pytestmark = pytest.mark.browser

PHONE = "+491705550123"


def _erika_writes(ctx: Konsent) -> Conversation:
    acc = sim_account(ctx)
    simulator.phone_send(ctx, acc.id, PHONE, "Guten Tag", name="Erika Mustermann", locale="de")
    simulator.phone_send(ctx, acc.id, PHONE, "Kaufen", locale="de")  # the demo bot routes to sales
    return _conversation(ctx, PHONE)


def test_agent_works_a_conversation_from_the_list_to_resolved_with_a_file_and_a_label(
    ctx, live_server, browser_page, tmp_path: Path
):  # type: ignore[no-untyped-def]
    """The list shows Erika by name with initials and unread count; j opens her conversation, r the
    reply box; a PDF goes to her phone; a label is saved with the panel's one Save; e resolves."""
    _agent(ctx, "anna@demo.example", "sales")
    conv = _erika_writes(ctx)
    page = browser_page
    _sign_in(page, live_server.url, "anna@demo.example")
    page.goto(f"{live_server.url}/admin/inbox")
    row = page.locator(f"#inbox-rows li[data-conversation='{conv.id}']")
    assert row.locator(".name").inner_text() == "Erika Mustermann"
    assert row.locator(".avatar").inner_text() == "EM"
    assert int(row.locator(".unread-count").inner_text().split()[0]) >= 1

    page.keyboard.press("?")
    assert page.locator("#keys-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys-help").is_visible()
    page.keyboard.press("j")  # the first conversation in the list: Erika's
    page.wait_for_url(re.compile(rf".*/admin/inbox/{conv.id}.*"))
    assert page.locator(f"#inbox-rows li[data-conversation='{conv.id}'][aria-current='true']").count() == 1
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reply-text"
    page.keyboard.type("Hier ist Ihr Angebot.")
    offer = tmp_path / "Angebot.pdf"
    offer.write_bytes(b"%PDF-1.4\n% Angebot\n" + b"x" * 500)
    page.set_input_files("#reply-file", str(offer))
    page.locator("form.composer button[type=submit]").click()
    page.wait_for_url(re.compile(r".*notice=sent.*"))
    page.locator("#thread .attachment a", has_text="Angebot.pdf").wait_for()

    page.fill("#labels", "Angebot")
    page.locator("#panel-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*notice=saved.*"))
    assert page.locator("#inbox-rows .badge.label", has_text="angebot").count() >= 1

    page.keyboard.press("e")  # resolve
    page.wait_for_url(re.compile(r".*notice=state.*"))
    assert page.locator(".thread-head .badge.state-closed").inner_text() == "erledigt"

    with ctx.db.read() as s:
        done = s.get(Conversation, conv.id)
        assert done is not None and done.state == "closed"
        labels = s.scalars(
            select(ConversationLabel.label).where(ConversationLabel.conversation_id == conv.id)
        )
        assert list(labels) == ["angebot"]
        assert s.scalars(select(InboxAttachment).where(InboxAttachment.conversation_id == conv.id)).one()
    sent = [m for m in simulator.phone_inbox(ctx, sim_account(ctx).id, PHONE) if m.media]  # Erika's phone
    assert sent and sent[-1].media["kind"] == "document" and sent[-1].text == "Hier ist Ihr Angebot."


def test_the_inbox_fits_a_phone_list_then_thread(ctx, live_server, browser_page):  # type: ignore[no-untyped-def]
    """A 390-pixel phone: one column, no sideways scrolling; the list, then the thread with a way back."""
    _agent(ctx, "anna@demo.example", "sales")
    conv = _erika_writes(ctx)
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_server.url, "anna@demo.example")
    page.goto(f"{live_server.url}/admin/inbox")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#inbox-rows").is_visible()
    page.locator(f"#inbox-rows li[data-conversation='{conv.id}'] a").click()
    page.wait_for_url(re.compile(rf".*/admin/inbox/{conv.id}.*"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not page.locator("#inbox-rows").is_visible()  # the thread has the screen
    assert page.locator("#thread").is_visible() and page.locator(".thread-head .back").is_visible()
    page.locator(".thread-head .back").click()
    page.wait_for_url(re.compile(r".*/admin/inbox$"))
    assert page.locator("#inbox-rows").is_visible()
