# ruff: noqa: F811
"""Interactive messages end to end (CH5, M1-M4, #16 item 2): an agent's buttons, a bot's list and a
broadcast's buttons reach the provider fake as valid bodies; the customer's tap comes back to the
inbox thread with the chosen title and to the waiting bot; channels without buttons get numbered
text; bad content is a 4xx from every door. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from konsent.domain.events import InboundMessage
from konsent.domain.interactive import Button, Interactive, LinkButton, ListRow
from konsent.flows.contacts import open_for_contact
from konsent.flows.context import Konsent
from konsent.flows.inbound.receive import handle_event
from konsent.flows.inbox import bot_flows, conversation
from konsent.flows.outbound import broadcast as bc
from konsent.store.tables import BotFlow, BotSession, Broadcast, Contact, Conversation, Message
from konsent.store.types import utcnow
from tests.broadcast.seed import seed
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.flows.support import api_token, auth
from tests.inbox.conftest import Crew, conversation_of, drain, say, sign_in, threema_account

USER = "4915112345678"
PHONE = "+491701234567"


def _no_bot(ctx: Konsent) -> None:
    with ctx.db.write() as s:
        for flow in s.scalars(select(BotFlow)):
            flow.active = False


def _threema_contact_wrote(ctx: Konsent) -> int:
    """A Threema account (no buttons) without the bot, and a contact who wrote "Hallo"; its id."""
    _no_bot(ctx)
    acc_id = threema_account(ctx)
    handle_event(ctx, acc_id, InboundMessage("th.1", "ABCD1234", utcnow(), text="Hallo"))
    return acc_id


def _wa_conversation(ctx: Konsent, client, fake, conn) -> Conversation:  # type: ignore[no-untyped-def]
    fake.user_text(fx.WA_PHONE_ID, USER, "Hallo, wann kommt mein Paket?")
    assert fx.deliver(client, conn, fake.take_outgoing()) == [200]
    with ctx.db.read() as s:
        return s.scalars(select(Conversation).where(Conversation.channel_account_id == conn.account_id)).one()


def _last_in(thread: list[conversation.ThreadMessage]) -> str:
    """The contact's newest message (providers stamp taps to the second: order by direction, not time)."""
    return [m for m in thread if m.direction == "in"][-1].text


def _thread(ctx: Konsent, crew: Crew, conv_id: int) -> list[conversation.ThreadMessage]:
    with ctx.db.write() as s:
        return conversation.view_conversation(ctx, s, crew.caller("admin"), conv_id).messages


def test_agent_buttons_reach_whatsapp_and_the_tap_shows_in_the_thread_with_its_title(ctx, client, fake, crew):
    """Composer → valid `interactive.button` at the fake → customer taps "Nein" → the inbox shows "Nein"."""
    _no_bot(ctx)
    conn = fx.connect(ctx, "whatsapp", fake)
    conv = _wa_conversation(ctx, client, fake, conn)
    csrf = sign_in(client, ctx, crew.users["admin"])
    r = client.post(
        f"/admin/inbox/{conv.id}/reply-interactive",
        data={"csrf_token": csrf, "text": "Sollen wir morgen liefern?", "kind": "buttons",
              "button_title": ["Ja", "Nein", ""]},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    drain(ctx)
    [sent] = [a for a in fake.accepted if a["body"]["type"] == "interactive"]
    assert sent["body"]["interactive"]["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "b1", "title": "Ja"}},
        {"type": "reply", "reply": {"id": "b2", "title": "Nein"}},
    ]
    fake.user_taps(fx.WA_PHONE_ID, USER, sent["id"], "b2")
    assert set(fx.deliver(client, conn, fake.take_outgoing())) == {200}  # statuses, then the tap
    thread = _thread(ctx, crew, conv.id)
    out = [m for m in thread if m.direction == "out"][-1]
    assert (out.text, out.buttons) == ("Sollen wir morgen liefern?", ["Ja", "Nein"])
    assert out.status in ("sent", "delivered", "read")
    assert _last_in(thread) == "Nein"
    page = client.get(f"/admin/inbox/{conv.id}").text
    assert f'action="/admin/inbox/{conv.id}/reply-interactive"' in page
    with ctx.db.read() as s:
        [msg] = s.scalars(select(Message).where(Message.direction == "out", Message.author != "")).all()
        assert b"liefern" not in msg.body_sealed and b"Nein" not in msg.body_sealed  # sealed like text


def test_composer_refuses_long_titles_and_eleven_rows_with_422_and_queues_nothing(ctx, client, fake, crew):
    _no_bot(ctx)
    conn = fx.connect(ctx, "whatsapp", fake)
    conv = _wa_conversation(ctx, client, fake, conn)
    csrf = sign_in(client, ctx, crew.users["admin"])
    base = {"csrf_token": csrf, "text": "Bitte wählen"}
    cases = [
        {"kind": "buttons", "button_title": ["x" * 21]},
        {"kind": "list", "list_button": "Wählen", "row_title": [f"Zeile {i}" for i in range(11)]},
        {"kind": "list", "list_button": "Wählen", "row_title": ["y" * 25]},
        {"kind": "link", "link_title": "Shop", "link_url": "http://shop.example"},
    ]
    for case in cases:
        r = client.post(f"/admin/inbox/{conv.id}/reply-interactive", data={**base, **case},
                        headers={"Accept-Language": "de"})  # fmt: skip
        assert r.status_code == 422, case
    assert "höchstens" in r.text or "https://" in r.text
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out")) == 0


def test_bot_choice_of_four_goes_out_as_a_whatsapp_list_and_the_tapped_row_advances_the_flow(
    ctx, client, fake, crew
):
    conn = fx.connect(ctx, "whatsapp", fake)
    with ctx.db.write() as s:
        for flow in s.scalars(select(BotFlow)):
            flow.active = False
        bot_flows.save_flow(
            s, crew.tenant_id, "user:1",
            {"name": "Anliegen", "trigger": {"type": "first_message"},
             "steps": [
                 {"id": "ask", "type": "choice", "text": "Worum geht es?", "options": [
                     {"id": "buy", "title": "Kaufen", "next": "sales"},
                     {"id": "help", "title": "Hilfe", "next": "support"},
                     {"id": "return", "title": "Rücksendung", "next": "support"},
                     {"id": "other", "title": "Etwas anderes", "next": "support"}]},
                 {"id": "sales", "type": "route", "team": "sales", "next": "bye"},
                 {"id": "support", "type": "route", "team": "support", "next": "bye"},
                 {"id": "bye", "type": "handover", "text": "Danke, gleich meldet sich jemand."}]},
        )  # fmt: skip
    conv = _wa_conversation(ctx, client, fake, conn)
    drain(ctx)
    [listed] = [a for a in fake.accepted if a["body"]["type"] == "interactive"]
    inter = listed["body"]["interactive"]
    assert inter["type"] == "list" and inter["action"]["button"] == "Auswählen"  # the contact's language
    assert [r["title"] for r in inter["action"]["sections"][0]["rows"]] == [
        "Kaufen", "Hilfe", "Rücksendung", "Etwas anderes"]  # fmt: skip
    fake.user_taps(fx.WA_PHONE_ID, USER, listed["id"], "return")
    assert set(fx.deliver(client, conn, fake.take_outgoing())) == {200}
    with ctx.db.read() as s:
        assert s.get(Conversation, conv.id).team_id == crew.support  # type: ignore[union-attr]
        session = s.scalars(select(BotSession).where(BotSession.conversation_id == conv.id)).one()
        assert session.state == "handover"
    assert _last_in(_thread(ctx, crew, conv.id)) == "Rücksendung"  # the tap, by its title, in the inbox


def test_threema_gets_numbered_text_and_an_answer_by_number_reaches_the_inbox(ctx: Konsent, crew: Crew):
    """A channel that declares no buttons: the options as numbered text, stored as sent; "2" comes back."""
    acc_id = _threema_contact_wrote(ctx)
    with ctx.db.write() as s:
        conv = s.scalars(select(Conversation).where(Conversation.channel_account_id == acc_id)).one()
        listed = Interactive(
            rows=(ListRow("r1", "Montag", "vormittags"), ListRow("r2", "Dienstag")), list_button="Tag"
        )
        msg = conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Welcher Tag passt?", choices=listed)
        contact = s.get(Contact, conv.contact_id)
        body = json.loads(open_for_contact(ctx, s, contact, "message", msg.body_sealed))  # type: ignore[arg-type]
        link = conversation.reply(
            ctx, s, crew.caller("admin"), conv.id, "Ihr Paket:",
            choices=Interactive(link=LinkButton("Verfolgen", "https://shop.example/t/1")),
        )  # fmt: skip
        link_body = json.loads(open_for_contact(ctx, s, contact, "message", link.body_sealed))  # type: ignore[arg-type]
    assert body["text"] == "Welcher Tag passt?\n1. Montag – vormittags\n2. Dienstag"
    assert "rows" not in body and body["buttons"] == []
    assert link_body["text"] == "Ihr Paket:\nVerfolgen: https://shop.example/t/1" and "link" not in link_body
    handle_event(ctx, acc_id, InboundMessage("th.2", "ABCD1234", utcnow(), text="2"))
    assert _last_in(_thread(ctx, crew, conv.id)) == "2"


def test_a_number_answering_numbered_options_shows_the_option_it_names_and_only_for_the_newest_offer(
    ctx: Konsent, crew: Crew, client
) -> None:
    """#17, CH5: on a channel without buttons the contact answers "2"; staff read "2 → Dienstag"
    in the thread. After a plain text from the agent, a later "1" is only a number."""
    acc_id = _threema_contact_wrote(ctx)
    with ctx.db.write() as s:
        conv = s.scalars(select(Conversation).where(Conversation.channel_account_id == acc_id)).one()
        listed = Interactive(rows=(ListRow("r1", "Montag"), ListRow("r2", "Dienstag")), list_button="Tag")
        conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Welcher Tag passt?", choices=listed)
    handle_event(ctx, acc_id, InboundMessage("th.2", "ABCD1234", utcnow(), text="2"))
    handle_event(ctx, acc_id, InboundMessage("th.3", "ABCD1234", utcnow(), text="dienstag"))
    handle_event(ctx, acc_id, InboundMessage("th.4", "ABCD1234", utcnow(), text="7"))
    with ctx.db.write() as s:
        conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Wie viele Pakete?")
    handle_event(ctx, acc_id, InboundMessage("th.5", "ABCD1234", utcnow(), text="1"))
    answers = [(m.text, m.answer) for m in _thread(ctx, crew, conv.id) if m.direction == "in"]
    assert answers == [("Hallo", ""), ("2", "Dienstag"), ("dienstag", ""), ("7", ""), ("1", "")]
    sign_in(client, ctx, crew.users["admin"])
    page = client.get(f"/admin/inbox/{conv.id}", headers={"Accept-Language": "de"})
    assert page.status_code == 200 and "→ Dienstag" in page.text


def test_api_accepts_a_list_and_refuses_four_buttons_eleven_rows_and_long_titles(
    ctx: Konsent, client, crew: Crew
):
    say(ctx, crew, PHONE, "Hallo")
    drain(ctx)
    cid = conversation_of(ctx, crew, PHONE).contact_id
    headers = auth(api_token(ctx))
    base = {"contact_id": cid, "purpose": "service", "text": "Bitte wählen"}
    rows = [{"title": f"Zeile {i}"} for i in range(10)]
    bad = [
        {"buttons": [{"title": f"B{i}"} for i in range(4)]},
        {"list": {"button": "Wählen", "rows": [*rows, {"title": "Elf"}]}},
        {"buttons": [{"title": "x" * 21}]},
        {"list": {"button": "Wählen", "rows": [{"title": "y" * 25}]}},
        {"link": {"title": "Shop", "url": "http://shop.example"}},
        {"buttons": [{"title": "Ja"}], "link": {"title": "Shop", "url": "https://shop.example"}},
    ]
    for extra in bad:
        r = client.post("/api/v1/messages", json={**base, **extra}, headers=headers)
        assert r.status_code == 422 and r.json()["code"] == "invalid_input", (extra, r.text)
    r = client.post(
        "/api/v1/messages", json={**base, "list": {"button": "Wählen", "rows": rows}}, headers=headers
    )
    assert r.status_code == 202, r.text
    [got] = [m for m in client.get(f"/api/v1/contacts/{cid}/messages", headers=headers).json()
             if m["id"] == r.json()["id"]]  # fmt: skip
    assert got["list"]["button"] == "Wählen" and [x["id"] for x in got["list"]["rows"]][:2] == ["r1", "r2"]
    de = client.post(
        "/api/v1/messages", json={**base, **bad[0]}, headers={**headers, "accept-language": "de"}
    )
    assert de.json()["message"] == "höchstens 3 Antwort-Buttons"


def test_broadcast_carries_three_buttons_to_whatsapp_and_refuses_a_list(ctx, client, fake, crew):
    """A newsletter with reply buttons; the legal-basis check is unchanged (only consenting contacts)."""
    conn = fx.connect(ctx, "whatsapp", fake)
    seed(ctx, conn.account_id, ["+4915140000001"], last_inbound=utcnow() - timedelta(hours=1))
    headers = auth(api_token(ctx))
    base = {"name": "Advent", "topic": "angebote", "text": "20% auf alles – interessiert?"}
    r = client.post("/api/v1/broadcasts", json={**base, "buttons": [{"title": f"B{i}"} for i in range(4)]},
                    headers=headers)  # fmt: skip
    assert r.status_code == 422
    r = client.post("/api/v1/broadcasts", json={**base, "list": {"button": "x", "rows": []}}, headers=headers)
    assert r.status_code == 422
    with ctx.db.write() as s:
        try:
            bc.create_broadcast(ctx, s, conn.tenant_id, name="L", topic="angebote", text="?",
                                choices=Interactive(rows=(ListRow("a", "A"),), list_button="Go"))  # fmt: skip
            raise AssertionError("a list in a broadcast must be refused")
        except Exception as exc:
            assert getattr(exc, "code", "") == "invalid_input"
    r = client.post(
        "/api/v1/broadcasts",
        json={**base, "buttons": [{"id": "deal-yes", "title": "Ja, zeigen"}, {"title": "Nein"}]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    with ctx.db.write() as s:
        bc.schedule(s, bc.get_broadcast(s, conn.tenant_id, bid, lock=True), None, actor="test")
    assert bc.queue_all(ctx, conn.tenant_id, bid, size=50)
    drain(ctx)
    [sent] = [a["body"] for a in fake.accepted]
    assert sent["interactive"]["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "deal-yes", "title": "Ja, zeigen"}},
        {"type": "reply", "reply": {"id": "b2", "title": "Nein"}},
    ]
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 1
    assert (
        Button("b2", "Nein")
        in bc.OutboundContent.from_dict({"buttons": [{"id": "b2", "title": "Nein"}]}).buttons
    )


def test_simulator_phone_shows_a_list_as_tappable_rows_and_a_link_button(ctx: Konsent, crew: Crew):
    from konsent.flows.inbound import simulator

    _no_bot(ctx)
    say(ctx, crew, PHONE, "Hallo")
    conv = conversation_of(ctx, crew, PHONE)
    with ctx.db.write() as s:
        listed = Interactive(rows=(ListRow("r1", "Montag"), ListRow("r2", "Dienstag")), list_button="Tag")
        conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Welcher Tag?", choices=listed)
        conversation.reply(
            ctx, s, crew.caller("admin"), conv.id, "Ihr Paket:",
            choices=Interactive(link=LinkButton("Verfolgen", "https://shop.example/t/1")),
        )  # fmt: skip
    drain(ctx)
    rows_msg, link_msg = simulator.phone_inbox(ctx, crew.account_id, PHONE)[-2:]
    assert rows_msg.buttons == [{"id": "r1", "title": "Montag"}, {"id": "r2", "title": "Dienstag"}]
    assert link_msg.link == {"title": "Verfolgen", "url": "https://shop.example/t/1"}
    say(ctx, crew, PHONE, "Dienstag", button="r2")  # the phone page sends the title with the id
    thread = _thread(ctx, crew, conv.id)
    assert _last_in(thread) == "Dienstag"
    assert [m.rows for m in thread if m.rows] == [["Montag", "Dienstag"]]
    assert [m.link for m in thread if m.link] == [("Verfolgen", "https://shop.example/t/1")]


def test_messenger_quick_reply_tap_on_agent_buttons_shows_its_title(ctx, client, fake, crew):
    _no_bot(ctx)
    conn = fx.connect(ctx, "messenger", fake)
    fake.user_message(fx.PAGE_ID, "4242", "Hallo")
    assert set(fx.deliver(client, conn, fake.take_outgoing())) == {200}
    with ctx.db.write() as s:
        conv = s.scalars(select(Conversation).where(Conversation.channel_account_id == conn.account_id)).one()
        choices = Interactive(buttons=(Button("b1", "Abholen"), Button("b2", "Liefern")))
        conversation.reply(ctx, s, crew.caller("admin"), conv.id, "Wie möchten Sie es?", choices=choices)
    drain(ctx)
    [sent] = [a["body"]["message"] for a in fake.accepted if "quick_replies" in a["body"]["message"]]
    assert [(q["title"], q["payload"]) for q in sent["quick_replies"]] == [
        ("Abholen", "b1"),
        ("Liefern", "b2"),
    ]
    fake.user_quick_reply(fx.PAGE_ID, "4242", "Liefern", "b2")
    assert set(fx.deliver(client, conn, fake.take_outgoing())) == {200}
    assert _last_in(_thread(ctx, crew, conv.id)) == "Liefern"


def test_api_conversation_reply_takes_buttons_and_refuses_a_fourth(ctx: Konsent, client, crew: Crew):
    _no_bot(ctx)
    say(ctx, crew, PHONE, "Hallo")
    conv = conversation_of(ctx, crew, PHONE)
    headers = auth(api_token(ctx))
    url = f"/api/v1/conversations/{conv.id}/reply"
    four = {"text": "Welche?", "buttons": [{"title": t} for t in ("A", "B", "C", "D")]}
    assert client.post(url, json=four, headers=headers).status_code == 422
    r = client.post(
        url, json={"text": "Passt es?", "buttons": [{"id": "ok", "title": "Passt"}]}, headers=headers
    )
    assert r.status_code == 202, r.text
    assert [m for m in _thread(ctx, crew, conv.id) if m.direction == "out"][-1].buttons == ["Passt"]


def test_broadcast_form_takes_reply_buttons_and_refuses_a_link_without_https(ctx: Konsent, demo, client):
    from tests.web.test_admin_auth import as_role, form_token

    token = as_role(ctx, client, "admin")
    base = {"csrf_token": token, "name": "Advent", "topic": "angebote", "text": "Interessiert?"}
    bad = {**base, "choice_kind": "link", "link_title": "Shop", "link_url": "http://shop.example"}
    r = client.post("/admin/broadcasts", data=bad, headers={"Accept-Language": "de"})
    assert r.status_code == 422 and "https://-Adresse" in r.text
    good = {
        **base,
        "csrf_token": form_token(r.text),
        "choice_kind": "buttons",
        "button_title": ["Ja", "Nein", ""],
    }
    assert client.post("/admin/broadcasts", data=good, follow_redirects=True).status_code == 200
    with ctx.db.read() as s:
        [b] = s.scalars(select(Broadcast)).all()
        assert b.content["buttons"] == [{"id": "b1", "title": "Ja"}, {"id": "b2", "title": "Nein"}]
    assert 'name="button_title"' in client.get("/admin/broadcasts").text
