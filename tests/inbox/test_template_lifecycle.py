"""A template's life after approval (T4, M1, M3): Meta pauses, rates and re-categorises templates;
konsent records each change with its history, pauses the broadcasts that use a template that can no
longer be sent, and checks the template's current category at the next send."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select

from konsent.channels.base import AccountConfig
from konsent.channels.whatsapp import WhatsAppCloudChannel
from konsent.domain.errors import NoLegalBasis
from konsent.domain.events import TemplateUpdate
from konsent.domain.templates import TemplateSpec
from konsent.flows.context import Konsent
from konsent.flows.inbound.receive import handle_event
from konsent.flows.inbox import conversation
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import template_lifecycle
from konsent.store.tables import Broadcast, MessageTemplate, TemplateEvent
from tests.channels import fixtures_meta as fx
from tests.inbox.conftest import Crew
from tests.inbox.test_templates import closed_window_conversation, save, wa_account

ADAPTER = WhatsAppCloudChannel()
ACCOUNT = AccountConfig(1, "whatsapp", settings={}, secrets={"app_secret": "x"})


def template_webhook(field: str, value: dict[str, Any]) -> bytes:
    """A WABA-level template webhook (Meta's webhook reference: no phone-number metadata)."""
    change = {"field": field, "value": value}
    entry = {"id": "102290129340398", "time": 1765100000, "changes": [change]}
    return fx.meta_bytes({"object": "whatsapp_business_account", "entry": [entry]})


STATUS_PAUSED = {
    "event": "PAUSED", "message_template_id": 1003, "message_template_name": "rueckfrage",
    "message_template_language": "de", "reason": "NONE",
    "other_info": {"title": "FIRST_PAUSE", "description": "Your template has been paused for 3 hours"},
}  # fmt: skip
QUALITY_RED = {
    "previous_quality_score": "GREEN", "new_quality_score": "RED", "message_template_id": 1003,
    "message_template_name": "rueckfrage", "message_template_language": "de",
}  # fmt: skip
CATEGORY_MARKETING = {
    "message_template_id": 1003, "message_template_name": "rueckfrage", "message_template_language": "de",
    "previous_category": "UTILITY", "new_category": "MARKETING",
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "what", "old", "new"),
    [
        ("message_template_status_update", STATUS_PAUSED, "status", "", "PAUSED"),
        ("message_template_quality_update", QUALITY_RED, "quality", "GREEN", "RED"),
        ("template_category_update", CATEGORY_MARKETING, "category", "UTILITY", "MARKETING"),
    ],
)
def test_template_webhooks_become_template_updates(field, value, what, old, new):  # type: ignore[no-untyped-def]
    [ev] = ADAPTER.parse(ACCOUNT, template_webhook(field, value))
    assert isinstance(ev, TemplateUpdate)
    assert (ev.name, ev.language, ev.field, ev.old, ev.new) == ("rueckfrage", "de", what, old, new)


def test_pause_reason_carries_metas_title_and_description() -> None:
    [ev] = ADAPTER.parse(ACCOUNT, template_webhook("message_template_status_update", STATUS_PAUSED))
    assert "FIRST_PAUSE" in ev.reason and "3 hours" in ev.reason


def _deliver(ctx: Konsent, account_id: int, field: str, value: dict[str, Any]) -> bool:
    [ev] = ADAPTER.parse(ACCOUNT, template_webhook(field, value))
    return handle_event(ctx, account_id, ev)


def _registered(ctx: Konsent, crew: Crew) -> int:
    acc = wa_account(ctx, crew)
    save(ctx, crew, acc, TemplateSpec("rueckfrage", "de", "UTILITY", "APPROVED", "Hallo {{1}}"))
    return acc


def test_a_template_recategorised_as_marketing_is_refused_for_a_service_message(
    ctx: Konsent, crew: Crew
) -> None:
    acc = _registered(ctx, crew)
    conv = closed_window_conversation(ctx, acc)
    with ctx.db.write() as s:  # before: a UTILITY template may answer outside the window
        conversation.reply_template(ctx, s, crew.caller("admin"), conv, "rueckfrage", "de", ["Erika"])
    assert _deliver(ctx, acc, "template_category_update", CATEGORY_MARKETING)
    with ctx.db.write() as s, pytest.raises(NoLegalBasis):
        conversation.reply_template(ctx, s, crew.caller("admin"), conv, "rueckfrage", "de", ["Erika"])
    with ctx.db.read() as s:
        row = s.scalars(select(MessageTemplate)).one()
        events = template_lifecycle.history(s, crew.tenant_id, row.id)
    assert row.category == "MARKETING"
    assert [(e.field, e.old, e.new) for e in events] == [("category", "UTILITY", "MARKETING")]


def test_quality_and_status_changes_are_kept_as_history(ctx: Konsent, crew: Crew) -> None:
    acc = _registered(ctx, crew)
    assert _deliver(ctx, acc, "message_template_quality_update", QUALITY_RED)
    assert _deliver(ctx, acc, "message_template_status_update", STATUS_PAUSED)
    assert not _deliver(ctx, acc, "message_template_status_update", STATUS_PAUSED)  # Meta's retry: once
    with ctx.db.read() as s:
        row = s.scalars(select(MessageTemplate)).one()
        events = s.scalars(select(TemplateEvent).order_by(TemplateEvent.id)).all()
    assert (row.quality, row.status) == ("RED", "PAUSED")
    assert [(e.field, e.old, e.new) for e in events] == [
        ("quality", "GREEN", "RED"),
        ("status", "APPROVED", "PAUSED"),
    ]


def test_a_paused_template_pauses_its_running_broadcast_with_the_reason(ctx: Konsent, crew: Crew) -> None:
    acc = _registered(ctx, crew)
    with ctx.db.write() as s:
        b = bc.create_broadcast(
            ctx, s, crew.tenant_id, name="Rückfrage", topic="angebote", text="",
            template="rueckfrage", template_language="de", template_params=["{first_name|du}"],
            channel_account_id=acc,
        )  # fmt: skip
        other = bc.create_broadcast(ctx, s, crew.tenant_id, name="Text", topic="angebote", text="Hallo")
        bc.schedule(s, b, None, actor="test")
        bc.schedule(s, other, None, actor="test")
        ids = (b.id, other.id)
    assert _deliver(ctx, acc, "message_template_status_update", STATUS_PAUSED)
    with ctx.db.read() as s:
        paused, untouched = (s.get(Broadcast, i) for i in ids)
    assert paused is not None and untouched is not None
    assert (
        paused.state == "paused"
        and "PAUSED" in paused.paused_reason
        and "FIRST_PAUSE" in paused.paused_reason
    )
    assert untouched.state in bc.ACTIVE  # a broadcast without that template goes on


def test_a_template_webhook_without_its_new_value_is_malformed() -> None:
    bad = copy.deepcopy(STATUS_PAUSED)
    del bad["event"]
    with pytest.raises(ValueError):
        ADAPTER.parse(ACCOUNT, template_webhook("message_template_status_update", bad))
    assert json.loads(template_webhook("x", {}))["entry"][0]["changes"][0]["field"] == "x"


def test_the_broadcast_page_says_why_konsent_paused_it(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    from tests.inbox.conftest import sign_in

    acc = _registered(ctx, crew)
    with ctx.db.write() as s:
        b = bc.create_broadcast(
            ctx, s, crew.tenant_id, name="Rückfrage", topic="angebote", text="", template="rueckfrage",
            template_language="de", template_params=["x"], channel_account_id=acc,
        )  # fmt: skip
        bc.schedule(s, b, None, actor="test")
        bid = b.id
    assert _deliver(ctx, acc, "message_template_status_update", STATUS_PAUSED)
    sign_in(client, ctx, crew.users["admin"])
    page = client.get(f"/admin/broadcasts/{bid}?lang=de").text
    assert "Von konsent pausiert: template rueckfrage (de) PAUSED" in page
