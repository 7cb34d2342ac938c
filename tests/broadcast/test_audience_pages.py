"""Admin pages for segments, the broadcast proof and contact pressure (#17 items 3 and 4, M5, U2)."""

from __future__ import annotations

import json

from sqlalchemy import select

from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import pressure, segments
from konsent.store.tables import AuditEntry
from tests.broadcast.seed import seed
from tests.conftest import drain
from tests.helpers import phone_texts, sim_account
from tests.web.test_admin_auth import as_role, form_token


def test_admin_saves_previews_and_sends_to_a_segment_and_downloads_its_proof(ctx, demo, client):
    acc = sim_account(ctx).id
    seed(ctx, acc, ["+4915140000001"], locale="de", name="Erika Muster")
    seed(ctx, acc, ["+4915140000002"], locale="en", name="John Doe")
    token = as_role(ctx, client, "admin")
    r = client.post(
        "/admin/segments",
        data={"csrf_token": token, "name": "Deutsch", "locale": "de"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "Deutsch" in r.text
    with ctx.db.read() as s:
        (seg,) = segments.list_segments(s, demo.tenant_id)
    r = client.post(
        "/admin/segments/preview",
        data={"csrf_token": form_token(r.text), "saved_segment": str(seg.id), "topic": "angebote"},
    )
    assert r.status_code == 200
    assert "Erika Muster" in r.text and "John Doe" not in r.text
    assert 'data-testid="preview-count">1 ' in r.text
    r = client.post(
        "/admin/broadcasts",
        data={
            "csrf_token": form_token(r.text),
            "name": "Herbst",
            "topic": "angebote",
            "text": "Hallo!",
            "segment_id": str(seg.id),
        },
        follow_redirects=True,
    )
    assert r.status_code == 200
    assert "language: de" in r.text or "Sprache: de" in r.text
    bid = int(r.url.path.rsplit("/", 1)[1])
    client.post(f"/admin/broadcasts/{bid}/send", data={"csrf_token": form_token(r.text)})
    bc.run_due(ctx)
    drain(ctx)
    assert phone_texts(ctx, "+4915140000001") == ["Hallo!"]
    assert phone_texts(ctx, "+4915140000002") == []
    doc = client.get(f"/admin/broadcasts/{bid}/proof.json")
    assert doc.status_code == 200
    proof = json.loads(doc.content)
    assert proof["chosen_by"]["segment"]["saved_segment"] == {"id": seg.id, "name": "Deutsch"}
    assert [r["status"] for r in proof["recipients"]] == ["sent"]
    csv_text = client.get(f"/admin/broadcasts/{bid}/export.csv").text
    assert csv_text.startswith("contact_id,message_id,status,reason")


def test_viewer_sees_the_count_but_no_names_and_cannot_save(ctx, demo, client):
    seed(ctx, sim_account(ctx).id, ["+4915140000011"], name="Erika Muster")
    token = as_role(ctx, client, "viewer")
    r = client.post("/admin/segments/preview", data={"csrf_token": token, "topic": "angebote"})
    assert r.status_code == 200 and 'data-testid="preview-count">1 ' in r.text
    assert "Erika Muster" not in r.text
    r = client.post("/admin/segments", data={"csrf_token": token, "name": "X"})
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action == "segment.preview")) is None


def test_agents_see_the_count_but_no_names_of_contacts_outside_their_teams(ctx, demo, client):
    seed(ctx, sim_account(ctx).id, ["+4915140000021"], name="Erika Muster")
    token = as_role(ctx, client, "agent")
    r = client.post("/admin/segments/preview", data={"csrf_token": token, "topic": "angebote"})
    assert r.status_code == 200 and 'data-testid="preview-count">1 ' in r.text
    assert "Erika Muster" not in r.text
    assert client.get("/admin/broadcasts/1/proof.json").status_code == 403


def test_bad_criteria_reshow_the_form_with_the_reason_and_save_nothing(ctx, demo, client):
    token = as_role(ctx, client, "admin")
    r = client.post(
        "/admin/segments",
        data={"csrf_token": token, "name": "Kaputt", "replied_within_days": "zehn"},
        headers={"accept-language": "de"},
    )
    assert r.status_code == 422
    assert "replied_within_days" in r.text
    r = client.post(
        "/admin/segments", data={"csrf_token": token, "name": "Kaputt", "subscribed_since": "morgen"}
    )
    assert r.status_code == 422
    r = client.post("/admin/segments/preview", data={"csrf_token": token, "topic": "gibtsnicht"})
    assert r.status_code == 422
    with ctx.db.read() as s:
        assert segments.list_segments(s, demo.tenant_id) == []


def test_admin_sets_frequency_cap_and_quiet_hours_in_german_and_english(ctx, demo, client):
    token = as_role(ctx, client, "admin")
    de = client.get("/admin/settings/pressure", headers={"accept-language": "de"})
    en = client.get("/admin/settings/pressure", headers={"accept-language": "en"})
    assert "Kontaktdruck" in de.text and "Ruhezeiten" in de.text
    assert "Contact pressure" in en.text and "Quiet hours" in en.text
    r = client.post(
        "/admin/settings/pressure",
        data={
            "csrf_token": token,
            "cap_messages": "2",
            "cap_days": "7",
            "quiet_start": "21:00",
            "quiet_end": "08:00",
        },
        follow_redirects=True,
    )
    assert r.status_code == 200
    with ctx.db.read() as s:
        assert pressure.current_rules(s, demo.tenant_id).as_dict() == {
            "cap_messages": 2,
            "cap_days": 7,
            "quiet_start": "21:00",
            "quiet_end": "08:00",
        }
    r = client.post(
        "/admin/settings/pressure",
        data={"csrf_token": token, "cap_messages": "viele", "quiet_start": "21:00"},
    )
    assert r.status_code == 422
    with ctx.db.read() as s:
        assert pressure.current_rules(s, demo.tenant_id).cap_messages == 2


def test_agents_cannot_change_contact_pressure(ctx, demo, client):
    token = as_role(ctx, client, "agent")
    r = client.post("/admin/settings/pressure", data={"csrf_token": token, "cap_messages": "0"})
    assert r.status_code == 403
