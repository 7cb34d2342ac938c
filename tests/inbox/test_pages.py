"""Inbox, bot, statistics and TOTP pages over HTTP (M1, M2, S3, S5, U3)."""

from __future__ import annotations

import json

import pyotp
from sqlalchemy import select

from konsent.flows.context import Konsent
from konsent.flows.inbox import conversation
from konsent.store.tables import AuditEntry, BotFlow, Message, StaffTotp
from tests.inbox.conftest import Crew, conversation_of, say, sign_in

ERIKA = "+491701111111"
MAX = "+491702222222"


def _two_teams(ctx: Konsent, crew: Crew) -> tuple[int, int]:
    say(ctx, crew, ERIKA, "Hallo", name="Erika Muster")
    say(ctx, crew, ERIKA, "Kaufen")  # the demo bot routes to sales
    say(ctx, crew, MAX, "Hallo", name="Max Beispiel")
    say(ctx, crew, MAX, "Hilfe")  # ... and to support
    return conversation_of(ctx, crew, ERIKA).id, conversation_of(ctx, crew, MAX).id


def test_agent_pages_show_only_own_team(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    """S3: agent Anna (sales) lists and opens sales conversations; support's answers 404."""
    sales, support = _two_teams(ctx, crew)
    sign_in(client, ctx, crew.users["anna"])
    page = client.get("/admin/inbox")
    assert page.status_code == 200
    assert "Erika Muster" in page.text and "Max Beispiel" not in page.text
    with ctx.db.read() as s:
        shown = s.scalars(select(AuditEntry).where(AuditEntry.action == "inbox.list")).one()
        assert shown.actor == f"user:{crew.users['anna'].id}"
        assert shown.payload["contacts"] == [conversation_of(ctx, crew, ERIKA).contact_id]
    assert client.get(f"/admin/inbox/{sales}").status_code == 200
    assert client.get(f"/admin/inbox/{support}", headers={"accept": "text/html"}).status_code == 404
    assert client.get(f"/admin/inbox/{support}/thread").status_code == 404


def test_reply_form_needs_csrf_and_queues_the_message(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    """M1: the composer sends through the legal-basis check; a forged form stores nothing."""
    sales, _ = _two_teams(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    with ctx.db.read() as s:
        before = len(s.scalars(select(Message).where(Message.direction == "out")).all())
    forged = client.post(f"/admin/inbox/{sales}/reply", data={"text": "Hallo", "csrf_token": "nope"})
    assert forged.status_code == 403
    ok = client.post(
        f"/admin/inbox/{sales}/reply",
        data={"text": "Gern, was suchen Sie?", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with ctx.db.read() as s:
        outs = s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)).all()
        assert len(outs) == before + 1 and outs[-1].author == f"user:{crew.users['anna'].id}"
    view = client.get(f"/admin/inbox/{sales}?notice=sent")
    assert "Gern, was suchen Sie?" in view.text
    stale = client.post(
        f"/admin/inbox/{sales}/state", data={"state": "closed", "version": "0", "csrf_token": csrf}
    )
    assert stale.status_code == 409  # someone changed it since version 0


def test_event_stream_delivers_inbox_events_for_visible_conversations(
    ctx: Konsent, crew: Crew, client
) -> None:  # type: ignore[no-untyped-def]
    """M1: the SSE stream carries events of the agent's own team only."""
    sales, support = _two_teams(ctx, crew)
    sign_in(client, ctx, crew.users["anna"])
    with client.stream("GET", "/admin/inbox/events?since=0&timeout=1") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = "".join(resp.iter_text())
    assert f'"conversation_id": {sales}' in body
    assert f'"conversation_id": {support}' not in body
    sign_in(client, ctx, crew.users["viewer"])
    assert client.get("/admin/inbox/events?timeout=1").status_code == 403


def test_bot_import_refuses_bad_yaml_and_exports_yaml_and_json(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    """M2: flows are imported/exported in the admin; a broken file is a 422 with the reason."""
    csrf = sign_in(client, ctx, crew.users["admin"])
    bad = client.post(
        "/admin/bot",
        data={"definition": "name: x\nsteps: [{id: a, type: nope}]", "fmt": "yaml", "csrf_token": csrf},
    )
    assert bad.status_code == 422 and "unknown type" in bad.text
    flow = {
        "name": "Hilfe",
        "trigger": {"type": "keyword", "keywords": ["hilfe"]},
        "steps": [{"id": "a", "type": "handover", "text": "Moment"}],
    }
    good = client.post(
        "/admin/bot",
        data={
            "definition": json.dumps(flow),
            "fmt": "json",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert good.status_code == 303
    with ctx.db.read() as s:
        assert [f.name for f in s.scalars(select(BotFlow).order_by(BotFlow.id))] == [
            "Begrüßung / Welcome",
            "Hilfe",
        ]
    flow_id = good.headers["location"].rsplit("/", 1)[1]
    yml = client.get(f"/admin/bot/{flow_id}/export")
    assert yml.status_code == 200 and "name: Hilfe" in yml.text
    assert client.get(f"/admin/bot/{flow_id}/export?format=json").json()["name"] == "Hilfe"
    sign_in(client, ctx, crew.users["anna"])
    assert client.get("/admin/bot").status_code == 403


def test_stats_page_charts_and_works_council_switch(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    """U3: SVG charts; S5: in works-council mode the per-agent table disappears."""
    sales, _ = _two_teams(ctx, crew)
    with ctx.db.write() as s:
        conversation.reply(ctx, s, crew.caller("anna"), sales, "Hallo")
    csrf = sign_in(client, ctx, crew.users["owner"])
    page = client.get("/admin/stats")
    assert (
        page.status_code == 200 and "<svg" in page.text and "Replies per agent" in page.text
    ) or "Antworten je" in page.text
    client.post("/admin/stats/works-council", data={"on": "1", "csrf_token": csrf})
    page = client.get("/admin/stats?lang=en")
    assert "Works-council mode is on" in page.text and "Replies per agent" not in page.text


def test_totp_enrolment_needs_a_valid_code(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    """S3: the second factor turns on only with a code from the app; the change is audited."""
    csrf = sign_in(client, ctx, crew.users["anna"])
    page = client.get("/admin/security/totp")
    assert page.status_code == 200 and "<svg" in page.text
    secret = page.text.split("<code>")[1].split("</code>")[0]
    wrong = client.post("/admin/security/totp", data={"code": "000000", "csrf_token": csrf})
    assert wrong.status_code == 422
    ok = client.post("/admin/security/totp", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf})
    assert ok.status_code == 200  # redirected back to the page
    with ctx.db.read() as s:
        assert s.get(StaffTotp, crew.users["anna"].id).confirmed_at is not None  # type: ignore[union-attr]
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.totp_enabled")).one()
        raw = s.get(StaffTotp, crew.users["anna"].id).secret_sealed  # type: ignore[union-attr]
        assert secret.encode() not in raw


def test_every_inbox_page_text_has_a_german_translation() -> None:
    """U2: each msgid in the inbox templates is translated in the German catalog."""
    import re
    from pathlib import Path

    src = Path(__file__).parents[2] / "src/konsent"
    folder = src / "web/templates/admin/inbox"
    known = set()
    for po in (src / "locales/de/LC_MESSAGES").glob("*.po"):
        known.update(re.findall(r'^msgid "(.*)"$', po.read_text(), re.M))
    missing = []
    for tpl in folder.glob("*.html"):
        text = tpl.read_text()
        for msgid in re.findall(r'_\("((?:[^"\\]|\\.)*)"', text) + re.findall(
            r"_\('((?:[^'\\]|\\.)*)'", text
        ):
            if msgid and msgid != "bot_" and msgid.replace("\\'", "'") not in known:
                missing.append(f"{tpl.name}: {msgid}")
    assert missing == []


def test_inbox_speaks_german_by_default(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, ctx, crew.users["anna"])
    page = client.get("/admin/inbox", headers={"accept-language": "de-DE"})
    assert "Posteingang" in page.text and "Keine passenden Unterhaltungen." in page.text


def test_event_stream_sees_changes_from_another_process_by_polling(ctx: Konsent, crew: Crew, client) -> None:  # type: ignore[no-untyped-def]
    """M1: a change committed by another process (no in-process wake-up) still reaches the stream."""
    import threading
    import time

    from sqlalchemy import insert

    from konsent.store.tables import InboxEvent
    from konsent.store.types import utcnow

    sales, _ = _two_teams(ctx, crew)
    sign_in(client, ctx, crew.users["anna"])

    def other_process() -> None:
        time.sleep(0.3)
        with ctx.db.engine.begin() as conn:  # plain Core: no session, so no hub wake-up
            conn.execute(
                insert(InboxEvent).values(
                    tenant_id=crew.tenant_id, conversation_id=sales, kind="elsewhere", created_at=utcnow()
                )
            )

    from konsent.flows.inbox import live

    with ctx.db.read() as s:  # the stream resumes from here, however late it starts on a busy machine
        since = live.last_event_id(s, crew.tenant_id)
    writer = threading.Thread(target=other_process)
    started = time.monotonic()
    writer.start()
    seen_after = None
    with client.stream("GET", f"/admin/inbox/events?timeout=15&since={since}") as resp:
        for line in resp.iter_lines():
            if '"kind": "elsewhere"' in line:
                seen_after = time.monotonic() - started
                break
    writer.join()
    # Only the 1-second database poll can deliver it (no wake-up); how fast is for bench/inbox.py.
    assert seen_after is not None
