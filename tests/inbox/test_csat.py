"""Customer satisfaction after a resolved conversation (#17 item 5, M1, S5): optional, asked only
through a lawful path, answered once per conversation by its own contact, reported per team."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.domain.templates import TemplateSpec
from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation, csat
from konsent.store.tables import BotFlow, CsatRating, Message
from konsent.store.types import utcnow
from tests.helpers import phone_texts
from tests.inbox.conftest import Crew, conversation_of, drain, say
from tests.inbox.test_templates import closed_window_conversation, save, wa_account

PHONE = "+491705550001"


def _switch_on(ctx: Konsent, crew: Crew, template: str = "", language: str = "") -> None:
    with ctx.db.write() as s:
        csat.save_settings(s, crew.caller("admin"), csat.Settings(True, {}, template, language))
        for flow in s.scalars(select(BotFlow)):
            flow.active = False  # the bot would answer first; here a person handles the conversation


def _resolve(ctx: Konsent, crew: Crew, conv_id: int) -> None:
    with ctx.db.write() as s:
        conversation.set_state(s, crew.caller("admin"), conv_id, "closed", ctx=ctx)
    drain(ctx)


def _ratings(ctx: Konsent) -> list[tuple[int, int | None]]:
    with ctx.db.read() as s:
        return [(r.conversation_id, r.score) for r in s.scalars(select(CsatRating))]


def test_nobody_is_asked_unless_the_tenant_switches_it_on(ctx: Konsent, crew: Crew) -> None:
    say(ctx, crew, PHONE, "Meine Bestellung fehlt")
    drain(ctx)
    conv = conversation_of(ctx, crew, PHONE)
    before = len(phone_texts(ctx, PHONE))
    _resolve(ctx, crew, conv.id)
    assert len(phone_texts(ctx, PHONE)) == before and _ratings(ctx) == []


def test_resolving_asks_with_three_buttons_and_the_tap_is_recorded_once_and_thanked(
    ctx: Konsent, crew: Crew
) -> None:
    _switch_on(ctx, crew)
    say(ctx, crew, PHONE, "Meine Bestellung fehlt")
    conv = conversation_of(ctx, crew, PHONE)
    _resolve(ctx, crew, conv.id)
    assert phone_texts(ctx, PHONE)[-1] == "Wie zufrieden sind Sie mit unserer Hilfe?"
    with ctx.db.read() as s:
        asked = s.scalars(select(Message).where(Message.author == "csat")).one()
        assert asked.purpose == "service"
    _resolve(ctx, crew, conv.id)  # resolving again asks nothing more
    assert _ratings(ctx) == [(conv.id, None)]
    say(ctx, crew, PHONE, "Gut", button=f"csat:{conv.id}:3")
    drain(ctx)
    assert _ratings(ctx) == [(conv.id, 3)]
    assert phone_texts(ctx, PHONE)[-1] == "Danke für Ihre Bewertung!"
    say(ctx, crew, PHONE, "Schlecht", button=f"csat:{conv.id}:1")  # a second tap changes nothing
    drain(ctx)
    assert _ratings(ctx) == [(conv.id, 3)]
    assert phone_texts(ctx, PHONE).count("Danke für Ihre Bewertung!") == 1


def test_a_rating_for_someone_elses_conversation_is_ignored(ctx: Konsent, crew: Crew) -> None:
    _switch_on(ctx, crew)
    say(ctx, crew, PHONE, "Hallo")
    conv = conversation_of(ctx, crew, PHONE)
    _resolve(ctx, crew, conv.id)
    say(ctx, crew, "+491705550002", "Schlecht", button=f"csat:{conv.id}:1")
    drain(ctx)
    assert _ratings(ctx) == [(conv.id, None)]


def test_outside_the_window_only_an_approved_utility_template_asks(ctx: Konsent, crew: Crew) -> None:
    acc = wa_account(ctx, crew)
    conv_id = closed_window_conversation(ctx, acc)
    _switch_on(ctx, crew)
    _resolve(ctx, crew, conv_id)
    assert _ratings(ctx) == []  # no template named: nobody is asked outside the 24-hour window
    save(ctx, crew, acc, TemplateSpec("zufriedenheit", "de", "UTILITY", "APPROVED", "Wie war unsere Hilfe?"))
    _switch_on(ctx, crew, "zufriedenheit", "de")
    with ctx.db.write() as s:
        conversation.set_state(s, crew.caller("admin"), conv_id, "open")
    _resolve(ctx, crew, conv_id)
    assert _ratings(ctx) == [(conv_id, None)]


def test_results_are_per_team_and_never_per_agent(ctx: Konsent, crew: Crew) -> None:
    _switch_on(ctx, crew)
    say(ctx, crew, PHONE, "Hallo")
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.write() as s:
        conversation.assign(s, crew.caller("admin"), conv.id, assignee_id=None, team_id=crew.support)
    _resolve(ctx, crew, conv.id)
    say(ctx, crew, PHONE, "Gut", button=f"csat:{conv.id}:3")
    drain(ctx)
    with ctx.db.read() as s:
        rows = csat.results(s, crew.caller("admin"), utcnow() - timedelta(days=1))
    assert [(r.team, r.asked, r.answered, r.good, r.score) for r in rows] == [("Support", 1, 1, 1, 100.0)]
    assert not any(hasattr(r, "agent") for r in rows)


def test_agents_cannot_change_the_satisfaction_settings(ctx: Konsent, crew: Crew) -> None:
    from konsent.domain.errors import PermissionDenied

    with ctx.db.write() as s, pytest.raises(PermissionDenied):
        csat.save_settings(s, crew.caller("anna"), csat.Settings(True, {}, "", ""))
