"""The bot says it is automated and hands over to a person on request (EU AI Act Art. 50, M2)."""

from __future__ import annotations

from sqlalchemy import select

from konsent.domain.disclosure import wants_human
from konsent.flows.context import Konsent
from konsent.flows.inbox import disclosure
from konsent.store.tables import BotSession, Tenant
from tests.helpers import phone_texts
from tests.inbox.conftest import Crew, drain, say

PHONE = "+491701112233"
GERMAN = "Hier antwortet ein automatischer Assistent."


def test_first_bot_message_of_a_session_discloses_it_is_automated_only_once(ctx: Konsent, crew: Crew) -> None:
    say(ctx, crew, PHONE, "Hallo")
    drain(ctx)
    texts = phone_texts(ctx, PHONE)
    assert texts[0].startswith(GERMAN)
    assert sum(GERMAN in x for x in texts) == 1


def test_a_contact_asking_for_a_person_is_handed_over_at_once(ctx: Konsent, crew: Crew) -> None:
    say(ctx, crew, PHONE, "Hallo")
    say(ctx, crew, PHONE, "Ich möchte mit einem Menschen sprechen")
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1].startswith("Ich verbinde Sie mit einer Person.")
    with ctx.db.read() as s:
        assert s.scalars(select(BotSession)).one().state == "handover"
    say(ctx, crew, PHONE, "1")  # the bot stays quiet from now on: a person answers
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1].startswith("Ich verbinde Sie")


def test_tenant_text_replaces_the_default_and_off_removes_it(ctx: Konsent, crew: Crew) -> None:
    with ctx.db.write() as s:
        disclosure.save(s, crew.caller("admin"), True, {"de": "Ich bin ein Bot der Demo GmbH.", "en": ""})
    say(ctx, crew, PHONE, "Hallo")
    drain(ctx)
    assert phone_texts(ctx, PHONE)[0].startswith("Ich bin ein Bot der Demo GmbH.\n\nHallo!")
    with ctx.db.write() as s:
        disclosure.save(s, crew.caller("admin"), False, {})
        tenant = s.get(Tenant, crew.tenant_id)
        assert tenant is not None and disclosure.text_for(tenant, "de") is None
    say(ctx, crew, "+491709998877", "Hallo")
    drain(ctx)
    assert phone_texts(ctx, "+491709998877")[0].startswith("Hallo!")


def test_only_staff_who_manage_the_bot_change_the_disclosure(ctx: Konsent, crew: Crew) -> None:
    import pytest

    from konsent.domain.errors import PermissionDenied

    with ctx.db.write() as s, pytest.raises(PermissionDenied):
        disclosure.save(s, crew.caller("anna"), False, {})


def test_asking_for_a_person_is_recognised_in_german_and_english_but_not_in_long_texts() -> None:
    assert wants_human("Mensch") and wants_human("human please") and wants_human("Mitarbeiter?")
    assert not wants_human("Hallo") and not wants_human("")
    assert not wants_human("Mein Mann ist auch ein Mensch, der gern Kaffee trinkt und Kuchen isst")


def test_admin_switches_the_disclosure_off_and_back_on_in_the_bot_page(
    ctx: Konsent, crew: Crew, client
) -> None:  # type: ignore[no-untyped-def]
    from tests.inbox.conftest import sign_in

    token = sign_in(client, ctx, crew.users["admin"])
    page = client.get("/admin/bot")
    assert (
        page.status_code == 200
        and "Tell contacts that the bot is automated" in client.get("/admin/bot?lang=en").text
    )
    r = client.post("/admin/bot/disclosure", data={"csrf_token": token, "text_de": "Bot hier."})
    assert r.status_code in (200, 303)
    with ctx.db.read() as s:
        assert disclosure.for_tenant(s, crew.tenant_id).enabled is False  # the box was not ticked
    client.post("/admin/bot/disclosure", data={"csrf_token": token, "enabled": "on", "text_de": "Bot hier."})
    with ctx.db.read() as s:
        told = disclosure.for_tenant(s, crew.tenant_id)
    assert told.enabled and told.texts["de"] == "Bot hier."
