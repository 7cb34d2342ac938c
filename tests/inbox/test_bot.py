"""The chatbot engine on real inbound webhooks (M2; DESIGN invariants 1, 3, 5)."""

from __future__ import annotations

from sqlalchemy import select

from konsent.flows.context import Konsent
from konsent.flows.inbox import bot, bot_flows, conversation
from konsent.store.tables import BotFlow, BotSession, Contact, ContactField, LedgerEntry
from tests.helpers import phone_texts
from tests.inbox.conftest import Crew, conversation_of, drain, say, threema_account

PHONE = "+491701234567"
# every bot session opens with this (EU AI Act Art. 50; tests/inbox/test_bot_disclosure.py)
AUTOMATED = (
    "Hier antwortet ein automatischer Assistent. "
    "Schreiben Sie jederzeit „Mensch“, um mit einer Person zu sprechen.\n\n"
)


def _session(ctx: Konsent, crew: Crew) -> BotSession:
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.read() as s:
        return s.scalars(select(BotSession).where(BotSession.conversation_id == conv.id)).one()


def test_demo_flow_routes_to_support_collects_name_with_consent_and_hands_over(
    ctx: Konsent, crew: Crew
) -> None:
    """M2: greeting, choice of concern → support team, name collected only after consent, handover."""
    say(ctx, crew, PHONE, "Hallo")
    drain(ctx)
    texts = phone_texts(ctx, PHONE)
    assert texts[0].startswith(AUTOMATED + "Hallo! Hier ist der Assistent") and texts[1] == "Worum geht es?"
    say(ctx, crew, PHONE, "", button="support")
    assert conversation_of(ctx, crew, PHONE).team_id == crew.support
    say(ctx, crew, PHONE, "Ja")
    say(ctx, crew, PHONE, "Erika Mustermann")
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1].startswith("Danke! Ein Mensch")
    assert _session(ctx, crew).state == "handover"
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.write() as s:
        from konsent.flows.inbox import conversation

        thread = conversation.view_conversation(ctx, s, crew.caller("sven"), conv.id).messages
        assert [m.text for m in thread if m.direction == "in"] == [
            "Hallo",
            "▶ support",
            "Ja",
            "Erika Mustermann",
        ]
        assert {m.author for m in thread if m.direction == "out"} == {"bot"}
    with ctx.db.read() as s:
        contact = s.get(Contact, conv.contact_id)
        assert contact is not None
        assert bot.contact_fields(ctx, s, contact) == {"name": "Erika Mustermann"}
        raw = s.scalars(select(ContactField.value_sealed)).one()
        assert b"Erika" not in raw  # sealed at rest (invariant 5)
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.purpose == "data:name")).one()
        assert entry.action == "granted"
        assert entry.payload["source"] == "bot" and entry.payload["answer"] == "yes"
        assert entry.payload["question"].startswith("Dürfen wir Ihren Namen speichern")
    # The bot has stopped: a further message gets no automatic answer.
    before = len(phone_texts(ctx, PHONE))
    say(ctx, crew, PHONE, "Hallo?")
    drain(ctx)
    assert len(phone_texts(ctx, PHONE)) == before


def test_declining_consent_keeps_nothing_beyond_the_conversation(ctx: Konsent, crew: Crew) -> None:
    """M2: 'Nein' to storing the name: no consent, no field, straight to a person."""
    say(ctx, crew, PHONE, "Hallo")
    say(ctx, crew, PHONE, "Kaufen")
    say(ctx, crew, PHONE, "Nein")
    assert conversation_of(ctx, crew, PHONE).team_id == crew.sales
    assert _session(ctx, crew).state == "handover"
    with ctx.db.read() as s:
        assert s.scalars(select(ContactField)).all() == []
        assert s.scalars(select(LedgerEntry).where(LedgerEntry.purpose == "data:name")).all() == []


def test_stop_wins_over_a_waiting_bot_step(ctx: Konsent, crew: Crew) -> None:
    """M2, C4: STOP is answered by the keyword handler even while the bot waits for a choice."""
    say(ctx, crew, PHONE, "Hallo")
    say(ctx, crew, PHONE, "STOP")
    drain(ctx)
    texts = phone_texts(ctx, PHONE)
    assert "Bitte wählen Sie eine der Antworten." not in texts
    assert len(texts) == 3  # greeting, question, the keyword's own answer


def test_out_of_hours_reply_and_keyword_trigger(ctx: Konsent, crew: Crew) -> None:
    """M2: a keyword-triggered flow outside business hours sends the out-of-hours reply."""
    definition = {
        "name": "Termine",
        "trigger": {"type": "keyword", "keywords": ["termin"]},
        "business_hours": {"timezone": "Europe/Berlin", "days": {}, "out_of_hours": "Gerade geschlossen."},
        "steps": [{"id": "a", "type": "end", "text": "offen"}],
    }
    with ctx.db.write() as s:
        bot_flows.save_flow(s, crew.tenant_id, "user:1", definition, priority=1)
    say(ctx, crew, PHONE, "Termin")
    drain(ctx)
    assert phone_texts(ctx, PHONE) == [AUTOMATED + "Gerade geschlossen."]
    assert _session(ctx, crew).state == "handover"


def test_flow_export_import_roundtrip_yaml_and_json(ctx: Konsent, crew: Crew) -> None:
    """M2: flows are exported and imported as YAML or JSON, unchanged."""
    with ctx.db.read() as s:
        row = bot_flows.list_flows(s, crew.tenant_id)[0]
        definition = row.definition
    for fmt in ("yaml", "json"):
        text = bot_flows.dump_definition(definition, fmt)
        assert bot_flows.load_definition(text, fmt) == definition
    assert "Worum geht es?" in bot_flows.dump_definition(definition, "yaml")  # readable, not escaped


def test_invalid_flow_import_is_refused_and_nothing_stored(ctx: Konsent, crew: Crew) -> None:
    """M2: a broken file or a route to a missing team → clear 422, nothing stored."""
    import pytest

    from konsent.domain.errors import InvalidInput

    with pytest.raises(InvalidInput):
        bot_flows.load_definition("steps: [unclosed", "yaml")
    bad = {"name": "x", "steps": [{"id": "a", "type": "route", "team": "nobody"}]}
    with pytest.raises(InvalidInput, match="no team 'nobody'"), ctx.db.write() as s:
        bot_flows.save_flow(s, crew.tenant_id, "user:1", bad)
    with ctx.db.read() as s:
        assert len(s.scalars(select(BotFlow)).all()) == 1


def test_withdrawing_the_data_consent_deletes_the_name_and_is_in_the_ledger(ctx: Konsent, crew: Crew) -> None:
    """M2, C4: a data consent is withdrawable; what was kept under it is deleted in the same step."""

    say(ctx, crew, PHONE, "Hallo")
    say(ctx, crew, PHONE, "Hilfe")
    say(ctx, crew, PHONE, "Ja")
    say(ctx, crew, PHONE, "Erika")
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, crew.caller("sven"), conv.id)
        assert view.fields == {"name": "Erika"}
    with ctx.db.write() as s:
        assert conversation.withdraw_data_consent(s, crew.caller("sven"), conv.id, "data:name") == 1
    with ctx.db.write() as s:
        assert (
            conversation.withdraw_data_consent(s, crew.caller("sven"), conv.id, "data:name") == 0
        )  # idempotent
        assert conversation.view_conversation(ctx, s, crew.caller("sven"), conv.id).fields == {}
        actions = [e.action for e in s.scalars(select(LedgerEntry).where(LedgerEntry.purpose == "data:name"))]
        assert actions == ["granted", "withdrawn"]
    import pytest

    from konsent.domain.errors import InvalidInput

    with pytest.raises(InvalidInput), ctx.db.write() as s:
        conversation.withdraw_data_consent(s, crew.caller("sven"), conv.id, "newsletter:angebote")


def test_channel_without_buttons_gets_numbered_choices_and_number_answers_work(
    ctx: Konsent, crew: Crew
) -> None:
    """M2: buttons are data the channel declares; without them the bot numbers the options."""
    from konsent.domain.events import InboundMessage
    from konsent.flows.contacts import open_for_contact
    from konsent.flows.inbound.receive import handle_event
    from konsent.store.tables import Conversation, Message
    from konsent.store.types import utcnow

    acc_id = threema_account(ctx)
    handle_event(ctx, acc_id, InboundMessage("th.1", "ABCD1234", utcnow(), text="Hallo"))
    handle_event(ctx, acc_id, InboundMessage("th.2", "ABCD1234", utcnow(), text="1"))
    with ctx.db.read() as s:
        conv = s.scalars(select(Conversation).where(Conversation.channel_account_id == acc_id)).one()
        contact = s.get(Contact, conv.contact_id)
        assert contact is not None
        outs = s.scalars(
            select(Message)
            .where(Message.conversation_id == conv.id, Message.direction == "out")
            .order_by(Message.id)
        ).all()
        import json

        bodies = [json.loads(open_for_contact(ctx, s, contact, "message", m.body_sealed)) for m in outs]
    assert bodies[1]["text"] == "Worum geht es?\n1. Kaufen\n2. Hilfe" and bodies[1]["buttons"] == []
    assert conv.team_id == crew.sales  # "1" picked the first option


def test_keyword_flow_does_not_start_where_a_person_already_answers(ctx: Konsent, crew: Crew) -> None:
    """M2: a keyword flow starts in a fresh conversation, never in one a person is handling."""
    from konsent.flows.inbox import conversation

    with ctx.db.write() as s:
        for flow in s.scalars(select(BotFlow)):
            flow.active = False
        bot_flows.save_flow(
            s, crew.tenant_id, "user:1",
            {"name": "Öffnungszeiten", "trigger": {"type": "keyword", "keywords": ["zeiten"]},
             "steps": [{"id": "a", "type": "end", "text": "Mo-Fr 9-17 Uhr"}]},
        )  # fmt: skip
    say(ctx, crew, PHONE, "Hallo")
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.write() as s:
        conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Guten Tag!")
    say(ctx, crew, PHONE, "Zeiten")
    drain(ctx)
    assert phone_texts(ctx, PHONE) == ["Guten Tag!"]
    say(ctx, crew, "+491709876543", "Zeiten")  # elsewhere the keyword starts the flow, which ends at once
    drain(ctx)
    assert phone_texts(ctx, "+491709876543") == [AUTOMATED + "Mo-Fr 9-17 Uhr"]
    assert conversation_of(ctx, crew, "+491709876543").state == "closed"  # resolved by the bot
