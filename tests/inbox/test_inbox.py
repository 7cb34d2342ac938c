"""The agent inbox: visibility by team, replies, assignment under concurrency, states, snooze,
notes, labels, search, canned replies and live events (M1, S3; DESIGN invariants 4, 5)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.domain.errors import Conflict, NotFound, PermissionDenied
from konsent.domain.templates import TemplateSpec
from konsent.flows.context import Konsent
from konsent.flows.inbox import canned, conversation, live
from konsent.flows.inbox import listing as inbox
from konsent.flows.outbound import templates
from konsent.store.tables import AuditEntry, BotFlow, ConversationNote, InboxEvent, Message
from konsent.store.types import utcnow
from tests.helpers import phone_texts
from tests.inbox.conftest import Crew, conversation_of, drain, say

ERIKA = "+491701111111"
MAX = "+491702222222"


@pytest.fixture
def no_bot(ctx: Konsent, crew: Crew) -> Crew:
    with ctx.db.write() as s:
        for flow in s.scalars(select(BotFlow)):
            flow.active = False
    return crew


def _route(ctx: Konsent, crew: Crew, phone: str, team_id: int | None) -> int:
    conv = conversation_of(ctx, crew, phone)
    with ctx.db.write() as s:
        conversation.assign(s, crew.caller("admin"), conv.id, assignee_id=None, team_id=team_id)
    return conv.id


def test_agent_sees_only_own_team_and_cannot_open_other_teams_conversation(
    ctx: Konsent, no_bot: Crew
) -> None:
    """S3: an agent of team sales sees sales conversations, never support's nor (by default) unrouted ones."""
    crew = no_bot
    say(ctx, crew, ERIKA, "Ich möchte kaufen", name="Erika")
    say(ctx, crew, MAX, "Hilfe", name="Max")
    sales_conv = _route(ctx, crew, ERIKA, crew.sales)
    support_conv = _route(ctx, crew, MAX, crew.support)
    say(ctx, crew, "+491709999999", "Neu hier")
    unrouted = conversation_of(ctx, crew, "+491709999999").id
    with ctx.db.write() as s:
        anna = crew.caller("anna")
        assert not inbox.agents_see_unrouted(s, crew.tenant_id)  # the default
        listed = inbox.list_conversations(ctx, s, anna, inbox.InboxFilter())
        assert [r.id for r in listed.rows] == [sales_conv]
        for hidden in (support_conv, unrouted):
            with pytest.raises(NotFound):
                conversation.view_conversation(ctx, s, anna, hidden)
            with pytest.raises(NotFound):
                conversation.reply(ctx, s, anna, hidden, "Hallo")
        admin_ids = {
            r.id for r in inbox.list_conversations(ctx, s, crew.caller("admin"), inbox.InboxFilter()).rows
        }
        assert admin_ids == {sales_conv, support_conv, unrouted}
        for role in ("dpo", "viewer"):
            with pytest.raises(PermissionDenied):
                inbox.list_conversations(ctx, s, crew.caller(role), inbox.InboxFilter())
        with pytest.raises(PermissionDenied):
            inbox.set_agents_see_unrouted(s, crew.caller("anna"), True)
    # Once the tenant switches it on, agents also see the unrouted queue, still not team B's.
    with ctx.db.write() as s:
        inbox.set_agents_see_unrouted(s, crew.caller("admin"), True)
    with ctx.db.write() as s:
        listed = inbox.list_conversations(ctx, s, crew.caller("anna"), inbox.InboxFilter())
        assert {r.id for r in listed.rows} == {sales_conv, unrouted}
        assert (
            conversation.view_conversation(ctx, s, crew.caller("anna"), unrouted).conversation.id == unrouted
        )
        with pytest.raises(NotFound):
            conversation.view_conversation(ctx, s, crew.caller("anna"), support_conv)
    with ctx.db.write() as s:
        inbox.set_agents_see_unrouted(s, crew.caller("admin"), False)
    with ctx.db.read() as s:
        listed = inbox.list_conversations(ctx, s, crew.caller("anna"), inbox.InboxFilter())
        assert [r.id for r in listed.rows] == [sales_conv]


def test_reply_reaches_the_phone_records_first_response_and_stops_the_bot(ctx: Konsent, crew: Crew) -> None:
    """M1, M2: an agent's answer is queued through the legal-basis check and delivered; the bot stops."""
    say(ctx, crew, ERIKA, "Hallo")
    conv = conversation_of(ctx, crew, ERIKA)
    with ctx.db.write() as s:
        conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Guten Tag, wie kann ich helfen?")
    drain(ctx)
    assert phone_texts(ctx, ERIKA)[-1] == "Guten Tag, wie kann ich helfen?"
    say(ctx, crew, ERIKA, "Hilfe")  # would have been a bot answer: the bot has stopped
    drain(ctx)
    assert phone_texts(ctx, ERIKA)[-1] == "Guten Tag, wie kann ich helfen?"
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, crew.caller("admin"), conv.id)
        assert view.bot_state == "handover"
        assert view.conversation.first_response_at is not None
        assert [m.direction for m in view.messages][-2:] == ["out", "in"]
        assert view.messages[-2].status in ("sent", "delivered", "read")
        assert view.window_open
    with ctx.db.read() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry))]
        assert "conversation.reply" in actions and "conversation.view" in actions


def test_stale_assignment_is_refused_and_concurrent_assignments_are_both_recorded(
    ctx: Konsent, no_bot: Crew
) -> None:
    """M1: two agents assigning at once: both recorded in order, a stale form gets 409, nothing lost."""
    crew = no_bot
    with ctx.db.write() as s:  # an unrouted conversation both agents (sales, support) may take
        inbox.set_agents_see_unrouted(s, crew.caller("admin"), True)
    say(ctx, crew, ERIKA, "Hallo")
    conv = conversation_of(ctx, crew, ERIKA)
    start_version = conv.version
    errors: list[Exception] = []

    def assign(who: str) -> None:
        try:
            with ctx.db.write() as s:
                conversation.assign(
                    s, crew.caller(who), conv.id, assignee_id=crew.users[who].id, team_id=None
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=assign, args=(w,)) for w in ("anna", "sven")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = conversation_of(ctx, crew, ERIKA)
    assert after.version == start_version + 2
    assert after.assignee_id in (crew.users["anna"].id, crew.users["sven"].id)
    with ctx.db.read() as s:
        recorded = [
            a.payload["assignee_id"]
            for a in s.scalars(select(AuditEntry).where(AuditEntry.action == "conversation.assign"))
        ]
    assert sorted(recorded) == sorted([crew.users["anna"].id, crew.users["sven"].id])
    assert recorded[-1] == after.assignee_id
    with pytest.raises(Conflict), ctx.db.write() as s:
        conversation.assign(
            s, crew.caller("anna"), conv.id, assignee_id=None, team_id=None, expected_version=start_version
        )


def test_two_agents_replying_at_once_are_both_sent(ctx: Konsent, no_bot: Crew) -> None:
    """M1: simultaneous replies are both stored and delivered, in some order."""
    crew = no_bot
    say(ctx, crew, ERIKA, "Hallo")
    conv = conversation_of(ctx, crew, ERIKA)

    def answer(who: str) -> None:
        with ctx.db.write() as s:
            conversation.reply(ctx, s, crew.caller(who), conv.id, f"Antwort von {who}")

    threads = [threading.Thread(target=answer, args=(w,)) for w in ("owner", "admin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain(ctx)
    assert sorted(phone_texts(ctx, ERIKA)) == ["Antwort von admin", "Antwort von owner"]
    assert conversation_of(ctx, crew, ERIKA).version == conv.version + 2


def test_states_snooze_labels_filters_and_search(ctx: Konsent, no_bot: Crew) -> None:
    """M1: filters by state, team, assignee, channel, label; search by name, number and #id; snooze."""
    crew = no_bot
    say(ctx, crew, ERIKA, "Hallo", name="Erika Muster")
    say(ctx, crew, MAX, "Hallo", name="Max Beispiel")
    erika = _route(ctx, crew, ERIKA, crew.sales)
    max_ = conversation_of(ctx, crew, MAX).id
    admin = crew.caller("admin")

    def ids(**kw: object) -> list[int]:
        with ctx.db.read() as s:
            return [r.id for r in inbox.list_conversations(ctx, s, admin, inbox.InboxFilter(**kw)).rows]  # type: ignore[arg-type]

    with ctx.db.write() as s:
        conversation.set_labels(s, admin, erika, ["VIP", "rechnung"])
        conversation.assign(s, admin, max_, assignee_id=crew.users["anna"].id, team_id=None)
        conversation.set_state(s, admin, max_, "pending")
    assert ids(label="vip") == [erika]
    assert ids(team_id=crew.sales) == [erika]
    assert ids(assignee=str(crew.users["anna"].id), state=None) == [max_]
    assert ids(assignee="none") == [erika]
    assert ids(state="pending") == [max_]
    assert set(ids(state=None, channel_account_id=crew.account_id)) == {erika, max_}
    assert ids(q="muster") == [erika]
    assert ids(q="0170 2222222", state=None) == [max_]
    assert ids(q=f"#{erika}") == [erika]
    assert ids(q="nobody") == []
    with ctx.db.write() as s:
        conversation.snooze(s, admin, erika, utcnow() + timedelta(hours=2))
    assert ids() == []
    assert ids(snoozed=True) == [erika]
    say(ctx, crew, ERIKA, "Noch da?")  # a message wakes the conversation
    assert ids() == [erika]
    say(ctx, crew, MAX, "Und?")  # and reopens a pending one
    assert ids(state="open") == [max_, erika]
    with ctx.db.write() as s:
        conversation.set_state(s, admin, erika, "closed")
    assert ids() == [max_]
    say(ctx, crew, ERIKA, "Ich bin es wieder")  # a closed conversation stays closed: a new one starts
    newer = conversation_of(ctx, crew, ERIKA).id
    assert newer != erika and ids() == [newer, max_]
    with ctx.db.write() as s:
        earlier = conversation.view_conversation(ctx, s, admin, newer).earlier
        assert [e[0] for e in earlier] == [erika]
        with pytest.raises(Conflict):  # reopening the old one would give the contact two open threads
            conversation.set_state(s, admin, erika, "open")


def test_bad_input_is_refused_and_nothing_changes(ctx: Konsent, no_bot: Crew) -> None:
    crew = no_bot
    say(ctx, crew, ERIKA, "Hallo")
    conv = conversation_of(ctx, crew, ERIKA)
    admin = crew.caller("admin")
    from konsent.domain.errors import InvalidInput

    for call in (
        lambda s: conversation.set_state(s, admin, conv.id, "archived"),
        lambda s: conversation.snooze(s, admin, conv.id, utcnow() - timedelta(hours=1)),
        lambda s: conversation.set_labels(s, admin, conv.id, ["<script>"]),
        lambda s: conversation.assign(s, admin, conv.id, assignee_id=crew.users["viewer"].id, team_id=None),
        lambda s: conversation.reply(ctx, s, admin, conv.id, "   "),
        lambda s: conversation.add_note(ctx, s, admin, conv.id, ""),
    ):
        with pytest.raises(InvalidInput), ctx.db.write() as s:
            call(s)
    assert conversation_of(ctx, crew, ERIKA).version == conv.version


def test_notes_are_sealed_and_canned_replies_fill_variables(ctx: Konsent, no_bot: Crew) -> None:
    """M1: internal notes never reach the contact and are sealed; canned replies know {name}."""
    crew = no_bot
    say(ctx, crew, ERIKA, "Hallo", name="Erika")
    conv = conversation_of(ctx, crew, ERIKA)
    admin = crew.caller("admin")
    with ctx.db.write() as s:
        conversation.add_note(ctx, s, admin, conv.id, "Stammkundin, bitte bevorzugt")
        canned.save_canned_reply(
            s, admin, "hallo", "Begrüßung", "Hallo {name}, hier ist {agent} von {company}. {unbekannt}"
        )
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, admin, conv.id)
        assert view.notes[0]["text"] == "Stammkundin, bitte bevorzugt"
        assert view.notes[0]["author"] == "admin"  # the staff member's name, not an id
        assert b"Stammkundin" not in s.scalars(select(ConversationNote.body_sealed)).one()
        filled = canned.canned_for(ctx, s, admin, conv.id)
    assert filled[0]["text"] == "Hallo Erika, hier ist admin von Demo GmbH. {unbekannt}"
    drain(ctx)
    assert phone_texts(ctx, ERIKA) == []
    with pytest.raises(PermissionDenied), ctx.db.write() as s:
        canned.save_canned_reply(s, crew.caller("anna"), "x", "x", "x")


def test_every_message_leaves_a_live_event_and_wakes_listeners(ctx: Konsent, crew: Crew) -> None:
    """M1: inbound messages, bot answers and assignments are live events; commits wake the hub."""
    import asyncio

    async def scenario() -> bool:
        loop_sub = live.HUB.subscribe(crew.tenant_id)
        try:
            await asyncio.to_thread(say, ctx, crew, ERIKA, "Hallo")
            await asyncio.wait_for(loop_sub[1].wait(), 2)
            return True
        finally:
            live.HUB.unsubscribe(crew.tenant_id, loop_sub)

    assert asyncio.run(scenario())
    with ctx.db.read() as s:
        kinds = [e.kind for e in s.scalars(select(InboxEvent).order_by(InboxEvent.id))]
        assert kinds[0] == "message_in" and "message_out" in kinds
        assert live.last_event_id(s, crew.tenant_id) > 0
        assert live.events_after(s, crew.tenant_id + 999, 0) == []
        assert s.scalars(select(Message).where(Message.direction == "out")).first() is not None


def test_outside_the_whatsapp_window_only_a_template_goes_out(ctx: Konsent, no_bot: Crew) -> None:
    """M1, CH3: after 24 hours the composer's free text is refused (409); a template is queued."""
    from konsent.domain.errors import InvalidInput, WindowClosed
    from konsent.domain.events import InboundMessage
    from konsent.flows.inbound.receive import handle_event
    from konsent.flows.organisation import tenants
    from konsent.store.tables import OutboxRow

    crew = no_bot
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        wa = tenants.create_channel_account(
            ctx, s, tenant, "whatsapp", "WhatsApp", provider_ref="111",
            secrets_={"access_token": "t", "app_secret": "a", "verify_token": "v"},
        )  # fmt: skip
        wa_id = wa.id
    handle_event(
        ctx, wa_id, InboundMessage("wamid.1", "+491703333333", utcnow() - timedelta(hours=30), text="Hallo")
    )
    with ctx.db.read() as s:
        from konsent.store.tables import Conversation

        conv_id = s.scalars(select(Conversation.id).where(Conversation.channel_account_id == wa_id)).one()
    admin = crew.caller("admin")
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, admin, conv_id)
        assert not view.window_open and view.templates and view.window_hours == 24
    with pytest.raises(WindowClosed), ctx.db.write() as s:
        conversation.reply(ctx, s, admin, conv_id, "Noch Fragen?")
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        conversation.reply_template(ctx, s, admin, conv_id, "Bad Name!", "de", [])
    with pytest.raises(InvalidInput, match="not registered"), ctx.db.write() as s:
        conversation.reply_template(ctx, s, admin, conv_id, "rueckfrage", "de", ["Erika"])
    with ctx.db.write() as s:
        spec = TemplateSpec("rueckfrage", "de", "UTILITY", "APPROVED", "Hallo {{1}}, haben Sie noch Fragen?")
        tpl = templates.save_template(ctx, s, admin, wa_id, spec)
        tpl_id = tpl.id
    with ctx.db.write() as s:
        msg = conversation.reply_template(ctx, s, admin, conv_id, "rueckfrage", "de", ["Erika"])
        msg_id = msg.id
    with ctx.db.read() as s:
        assert s.scalars(select(OutboxRow).where(OutboxRow.message_id == msg_id)).one().purpose == "service"
        sent = s.get(Message, msg_id)
        assert sent is not None and (sent.template_id, sent.template_version) == (tpl_id, 1)


def test_old_live_events_are_pruned(ctx: Konsent, no_bot: Crew) -> None:
    """M1: live events only bridge reconnects; older than an hour they go."""
    crew = no_bot
    say(ctx, crew, ERIKA, "Hallo")
    with ctx.db.write() as s:
        assert live.prune(s, crew.tenant_id, utcnow() - live.KEEP) == 0
        assert (
            live.prune(s, crew.tenant_id + 1, utcnow() + timedelta(seconds=1)) == 0
        )  # other tenants untouched
        assert live.prune(s, crew.tenant_id, utcnow() + timedelta(seconds=1)) >= 1
        assert live.events_after(s, crew.tenant_id, 0) == []
