"""The inbox a team lead would choose (#17 item 1): people instead of ids, unread counts, combinable
filters, one Save for the side panel, disabled states with their reason, templates in the
thread, the "is replying" notice (M1, S3, S4)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from konsent.domain.errors import Conflict
from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation, panel, presence
from konsent.flows.organisation import channel_admin
from konsent.flows.outbound import templates
from konsent.store.tables import AuditEntry, ChannelAccount, Conversation, ConversationLabel
from konsent.store.types import utcnow
from tests.inbox.conftest import Crew, conversation_of, say, sign_in

ERIKA = "+491701111111"
MAX = "+491702222222"
NONAME = "+491703333333"


def listed(html: str) -> list[int]:
    """The conversation ids in the list column, in order."""
    return [int(x) for x in re.findall(r'<li data-conversation="(\d+)"', html)]


def _two_teams(ctx: Konsent, crew: Crew) -> tuple[int, int]:
    say(ctx, crew, ERIKA, "Hallo", name="Erika Muster")
    say(ctx, crew, ERIKA, "Kaufen")  # the demo bot routes to sales (Anna's team)
    say(ctx, crew, MAX, "Hallo", name="Max Beispiel")
    say(ctx, crew, MAX, "Hilfe")  # ... and to support (Sven's team)
    return conversation_of(ctx, crew, ERIKA).id, conversation_of(ctx, crew, MAX).id


def test_list_shows_names_initials_and_the_number_where_no_name_is_known_never_an_id(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """#17: "Erika Muster" with avatar "EM"; a contact without a name shows their number, not "#4"."""
    erika, _ = _two_teams(ctx, crew)
    say(ctx, crew, NONAME, "Hallo")
    noname = conversation_of(ctx, crew, NONAME)
    sign_in(client, ctx, crew.users["admin"])
    html = client.get("/admin/inbox?state=all").text
    assert "Erika Muster" in html and '<span class="avatar" aria-hidden="true">EM</span>' in html
    assert "+491703333333" in html
    assert f">#{noname.contact_id}<" not in html and f"#{noname.contact_id}" not in html
    page = client.get(f"/admin/inbox/{erika}").text
    assert "<h1" in page and "Erika Muster" in page.split("<h1", 1)[1].split("</h1>")[0]


def test_unread_count_counts_the_contacts_messages_until_an_agent_opens_the_conversation(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """M1: two messages nobody has read show "2"; after an agent opens the conversation none."""
    erika, _ = _two_teams(ctx, crew)
    sign_in(client, ctx, crew.users["admin"])
    item = re.compile(rf'<li data-conversation="{erika}".*?</li>', re.S)
    first = item.search(client.get("/admin/inbox").text)
    assert first and re.search(r'class="unread-count"[^>]*>2<', first.group(0))
    client.get(f"/admin/inbox/{erika}")
    say(ctx, crew, ERIKA, "Noch da?")
    again = item.search(client.get("/admin/inbox").text)
    assert again and re.search(r'class="unread-count"[^>]*>1<', again.group(0))
    client.get(f"/admin/inbox/{erika}")
    last = item.search(client.get("/admin/inbox").text)
    assert last and "unread-count" not in last.group(0)


def test_filters_are_query_parameters_that_combine_and_stay_team_scoped(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """Mine, my teams, unassigned, label, state, channel combine; an agent still sees only their teams."""
    erika, max_ = _two_teams(ctx, crew)
    admin = crew.caller("admin")
    with ctx.db.write() as s:
        conversation.assign(s, admin, erika, assignee_id=crew.users["anna"].id, team_id=crew.sales)
        conversation.set_labels(s, admin, erika, ["vip"])
        conversation.set_labels(s, admin, max_, ["vip", "rückruf"])
        conversation.set_state(s, admin, max_, "pending")
    sign_in(client, ctx, crew.users["admin"])

    def ids(query: str) -> list[int]:
        r = client.get("/admin/inbox?" + query)
        assert r.status_code == 200
        return listed(r.text)

    assert set(ids("state=all&label=vip")) == {erika, max_}
    assert ids("state=pending&label=vip") == [max_]
    assert ids("state=open&label=vip") == [erika]
    assert ids("state=all&assignee=none") == [max_]
    assert ids("state=all&label=r%C3%BCckruf&assignee=none") == [max_]
    assert ids("state=resolved") == []
    assert ids(f"state=all&channel={crew.account_id}&label=vip") != []
    assert ids(f"state=all&channel={crew.account_id + 999}") == []
    assert ids("state=all&team=mine") == []  # the admin is in no team
    client.cookies.clear()
    sign_in(client, ctx, crew.users["anna"])
    assert ids("state=all&assignee=me") == [erika]
    assert ids("state=all&team=mine") == [erika]
    assert ids("state=all&label=vip") == [erika]  # Max is support's: never listed for Anna
    # the filters survive into the conversation and back: the links carry them
    page = client.get(f"/admin/inbox/{erika}?state=all&label=vip").text
    assert f'href="/admin/inbox/{erika}?state=all&amp;label=vip"' in page
    assert 'href="/admin/inbox?state=all&amp;label=vip"' in page


def test_side_panel_saves_state_assignee_team_labels_and_snooze_with_one_save(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """One form, one Save: everything changes in one request; each change is audited."""
    erika, _ = _two_teams(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    with ctx.db.read() as s:
        version = s.get(Conversation, erika).version  # type: ignore[union-attr]
    page = client.get(f"/admin/inbox/{erika}").text
    panel_form = page.split('id="panel-form"', 1)[1].split("</form>", 1)[0]
    assert panel_form.count('type="submit"') == 1
    assert all(f'name="{f}"' in panel_form for f in ("state", "assignee", "team", "labels", "snooze"))
    r = client.post(
        f"/admin/inbox/{erika}/panel",
        data={
            "csrf_token": csrf,
            "version": str(version),
            "state": "pending",
            "assignee": str(crew.users["anna"].id),
            "team": str(crew.sales),
            "labels": "VIP, Rückruf",
            "snooze": "4",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and "notice=saved" in r.headers["location"]
    with ctx.db.read() as s:
        conv = s.get(Conversation, erika)
        assert conv is not None
        assert (conv.state, conv.assignee_id, conv.team_id) == ("pending", crew.users["anna"].id, crew.sales)
        assert conv.snoozed_until is not None
        labels = s.scalars(select(ConversationLabel.label).where(ConversationLabel.conversation_id == erika))
        assert sorted(labels) == ["rückruf", "vip"]
        actions = {a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.actor.like("user:%")))}
        assert {"conversation.state", "conversation.assign", "conversation.snooze"} <= actions


def test_side_panel_from_a_stale_page_changes_nothing_and_says_so(ctx: Konsent, crew: Crew) -> None:
    """Two agents: the second one's form (older version) is refused whole; nothing half-saved."""
    erika, _ = _two_teams(ctx, crew)
    with ctx.db.write() as s:
        stale = s.get(Conversation, erika).version  # type: ignore[union-attr]
        conversation.set_labels(s, crew.caller("admin"), erika, ["eilig"])
    change = panel.PanelChange(stale, "closed", None, None, ["anders"])
    with pytest.raises(Conflict), ctx.db.write() as s:
        panel.save_panel(ctx, s, crew.caller("anna"), erika, change)
    with ctx.db.read() as s:
        conv = s.get(Conversation, erika)
        assert conv is not None and conv.state == "open"
        assert list(
            s.scalars(select(ConversationLabel.label).where(ConversationLabel.conversation_id == erika))
        ) == ["eilig"]


def test_reply_box_is_disabled_with_its_reason_when_the_channel_is_switched_off(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """A switched-off channel: the text box and Send are disabled and the page says why (DE)."""
    erika, _ = _two_teams(ctx, crew)
    sign_in(client, ctx, crew.users["admin"])
    open_page = client.get(f"/admin/inbox/{erika}").text
    composer = open_page.split('class="composer', 1)[1].split("</form>", 1)[0]
    assert "disabled" not in composer and 'id="reply-file"' in composer
    with ctx.db.write() as s:
        channel_admin.set_active(s, crew.tenant_id, "user:0", crew.account_id, False)
    page = client.get(f"/admin/inbox/{erika}", headers={"Accept-Language": "de"}).text
    composer = page.split('class="composer', 1)[1].split("</form>", 1)[0]
    assert re.search(r'<textarea id="reply-text"[^>]* disabled aria-describedby="composer-reason"', composer)
    assert re.search(r'<button type="submit" disabled', composer)
    assert "Dieser Kanal ist abgeschaltet" in composer
    assert 'id="reply-file"' not in composer  # nothing to attach where nothing can be sent


def test_outside_the_window_the_reply_box_names_the_template_and_a_sent_template_shows_its_text(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """WhatsApp, contact silent for 30 h: free text disabled with the reason "only an approved
    template"; the template sent shows header, body with its values and buttons, not an empty bubble."""
    from tests.inbox.test_templates import META_EXPORT, closed_window_conversation, wa_account

    account = wa_account(ctx, crew)
    conv = closed_window_conversation(ctx, account)
    with ctx.db.write() as s:
        templates.import_templates(ctx, s, crew.caller("admin"), account, json.dumps(META_EXPORT))
    sign_in(client, ctx, crew.users["admin"])
    page = client.get(f"/admin/inbox/{conv}", headers={"Accept-Language": "de"}).text
    composer = page.split('class="composer', 1)[1].split("</form>", 1)[0]
    assert re.search(r'<textarea id="reply-text"[^>]* disabled', composer)
    assert "Das 24-Stunden-Fenster ist geschlossen" in composer and "freigegebene Vorlage" in composer
    assert 'id="template-picker"' in page
    with ctx.db.write() as s:
        conversation.reply_template(ctx, s, crew.caller("admin"), conv, "rueckfrage", "de", ["Erika", "A-1"])
    thread = client.get(f"/admin/inbox/{conv}/thread").text
    bubble = thread.split('class="msg out template"', 1)[1].split("</li>", 1)[0]
    assert "Demo GmbH" in bubble and "Hallo Erika, haben Sie zu Auftrag A-1 noch Fragen?" in bubble
    assert re.findall(r'<span class="reply-button">([^<]+)</span>', bubble) == ["Ja", "Nein"]


def test_reply_box_says_why_when_the_contact_blocked_the_channel(ctx: Konsent, crew: Crew) -> None:
    """No legal basis to send (the contact blocked the channel): nothing may be sent, with the reason."""
    from konsent.flows.inbox.composer import UNREACHABLE, composer_state
    from konsent.store.tables import Contact

    say(ctx, crew, ERIKA, "Hallo")
    conv = conversation_of(ctx, crew, ERIKA)
    with ctx.db.write() as s:
        contact, acc = s.get(Contact, conv.contact_id), s.get(ChannelAccount, crew.account_id)
        assert contact is not None and acc is not None
        contact.unreachable = True
        state = composer_state(
            s, contact, acc, window_open=True, window_hours=None, templates=False, at=utcnow()
        )
    assert (state.can_reply, state.can_template, state.reason) == (False, False, UNREACHABLE)


def test_another_agent_replying_is_shown_in_the_conversation_and_sent_live(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """Collision notice: Anna types; the owner opening the conversation sees "anna is replying";
    Anna does not see herself; the live stream carries the note."""
    erika, _ = _two_teams(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    assert client.post(f"/admin/inbox/{erika}/typing", data={"csrf_token": csrf}).status_code == 204
    assert client.post(f"/admin/inbox/{erika}/typing", data={"csrf_token": "forged"}).status_code == 403
    own = client.get(f"/admin/inbox/{erika}").text
    assert re.search(r'id="replying-notice"[^>]*hidden', own)
    client.cookies.clear()
    sign_in(client, ctx, crew.users["owner"])
    page = client.get(f"/admin/inbox/{erika}", headers={"Accept-Language": "de"}).text
    notice = page.split('id="replying-notice"', 1)[1].split("</p>", 1)[0]
    assert "hidden" not in notice.split(">", 1)[0] and "anna antwortet gerade." in notice
    events = client.get("/admin/inbox/events?timeout=2&since=0").text
    assert f'"conversation_id": {erika}, "kind": "typing:{crew.users["anna"].id}"' in events
    with ctx.db.read() as s:
        assert presence.replying_now(s, crew.caller("owner"), erika) == ["anna"]
        assert presence.replying_now(s, crew.caller("anna"), erika) == []


def test_typing_note_of_an_agent_outside_the_team_is_refused(ctx: Konsent, crew: Crew, client: Any) -> None:
    """S3: Sven (support) cannot even announce typing in a sales conversation."""
    erika, _ = _two_teams(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["sven"])
    assert client.post(f"/admin/inbox/{erika}/typing", data={"csrf_token": csrf}).status_code == 404
