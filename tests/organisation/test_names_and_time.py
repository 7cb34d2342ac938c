"""Names instead of ids and local time (#12, U5): display names from the provider's profile,
editable by staff, sealed at rest, exported and erased; times in the tenant's or the staff
member's zone; personalisation without gaps ("Hallo," never "Hallo ,")."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select, text

from konsent.domain.fill import fill
from konsent.flows.inbound import simulator
from konsent.flows.inbox import canned
from konsent.flows.organisation import localtime, staff_admin
from konsent.flows.outbound import personalise
from konsent.flows.privacy import export, rights
from konsent.store.tables import AuditEntry, Contact, Conversation, StaffUser
from konsent.web.deps import Caller
from tests.conftest import on_postgres
from tests.flows.support import contact_of
from tests.helpers import sim_account
from tests.web.test_admin_auth import as_role

PHONE = "+4915112349876"
NAME = "Zacharias Quellwasser"
EN = {"accept-language": "en"}


def _write(ctx, text_: str, name: str | None = None) -> None:  # type: ignore[no-untyped-def]
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, text_, name=name)


def _stored_bytes(ctx) -> bytes:  # type: ignore[no-untyped-def]
    """Everything the database holds about contacts, as the disk or a dump would show it."""
    if on_postgres():
        with ctx.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM contacts")).all()
            rows += conn.execute(text("SELECT * FROM audit_log")).all()
            rows += conn.execute(text("SELECT * FROM tenants")).all()
        return repr(rows).encode()
    path = Path(ctx.settings.database_url.removeprefix("sqlite:///"))
    ctx.db.engine.dispose()  # checkpoint the WAL into the file
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_the_profile_name_is_the_display_name_everywhere_staff_see_the_contact(ctx, demo, client):
    _write(ctx, "Hallo, ich habe eine Frage", name=NAME)
    contact = contact_of(ctx, PHONE)
    with ctx.db.read() as s:
        conv = s.scalars(select(Conversation).where(Conversation.contact_id == contact.id)).one()
    as_role(ctx, client, "owner")
    assert NAME in client.get("/admin/contacts").text
    assert NAME in client.get(f"/admin/contacts/{contact.id}").text
    assert NAME in client.get("/admin/inbox").text
    assert NAME in client.get(f"/admin/inbox/{conv.id}").text
    with ctx.db.read() as s:
        assert "contact.list_view" in s.scalars(select(AuditEntry.action)).all()


def test_the_display_name_is_sealed_at_rest(ctx, demo):
    _write(ctx, "Hallo", name=NAME)
    with ctx.db.read() as s:
        sealed = s.scalars(select(Contact.name_sealed)).one()
    assert sealed and NAME.encode() not in sealed
    stored = _stored_bytes(ctx)
    assert b"Demo GmbH" in stored  # the search sees plaintext where there is some
    assert b"Quellwasser" not in stored


def test_a_later_profile_name_fills_an_empty_one_but_never_overwrites_what_staff_set(ctx, demo, client):
    _write(ctx, "Hallo")  # the provider sent no name
    contact = contact_of(ctx, PHONE)
    token = as_role(ctx, client, "admin")
    assert f"#{contact.id}" in client.get("/admin/contacts").text
    _write(ctx, "Noch da?", name=NAME)
    assert NAME in client.get(f"/admin/contacts/{contact.id}").text
    r = client.post(
        f"/admin/contacts/{contact.id}/name", data={"csrf_token": token, "name": "  Zacharias  Q. "}
    )
    assert r.status_code == 200
    _write(ctx, "Hallo wieder", name="Somebody Else")
    page = client.get(f"/admin/contacts/{contact.id}").text
    assert "Zacharias Q." in page and "Somebody Else" not in page
    with ctx.db.read() as s:
        edits = s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.edit")).all()
    assert len(edits) == 1 and "Zacharias" not in str(edits[0].payload)
    long = client.post(
        f"/admin/contacts/{contact.id}/name", data={"csrf_token": token, "name": "x" * 201}, headers=EN
    )
    assert long.status_code == 422 and "at most 200 characters" in long.text


def test_a_viewer_neither_sees_nor_edits_display_names(ctx, demo, client):
    _write(ctx, "Hallo", name=NAME)
    contact = contact_of(ctx, PHONE)
    token = as_role(ctx, client, "viewer")
    assert NAME not in client.get("/admin/contacts").text
    r = client.post(f"/admin/contacts/{contact.id}/name", data={"csrf_token": token, "name": "Hacked"})
    assert r.status_code == 403


def test_the_display_name_is_exported_and_erased_with_the_contact(ctx, demo):
    _write(ctx, "Hallo", name=NAME)
    contact = contact_of(ctx, PHONE)
    with ctx.db.write() as s:
        data = export.staff_export(ctx, s, demo.tenant_id, "test", contact.id)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert any(NAME in z.read(n).decode("utf-8", "replace") for n in z.namelist())
    with ctx.db.write() as s:
        rights.erase_contact(ctx, s, s.get(Contact, contact.id), source="staff", actor="test")
    with ctx.db.read() as s:
        c = s.get(Contact, contact.id)
        assert c.name_sealed is None and c.wrapped_key is None
    assert b"Quellwasser" not in _stored_bytes(ctx)


def test_times_are_shown_in_the_tenants_zone_and_in_a_staff_members_own(ctx, demo, client):
    with time_machine.travel(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), tick=False):
        _write(ctx, "Hallo", name=NAME)
    contact = contact_of(ctx, PHONE)
    token = as_role(ctx, client, "owner")
    page = client.get(f"/admin/contacts/{contact.id}").text
    assert "2026-07-01 14:00 CEST" in page  # the default zone, Europe/Berlin
    r = client.post(
        "/admin/staff-settings",
        data={"csrf_token": token, "time_zone": "America/New_York", "require_2fa": []},
    )
    assert r.status_code == 200
    assert "2026-07-01 08:00 EDT" in client.get(f"/admin/contacts/{contact.id}").text
    assert "2026-07-01 08:00 EDT" in client.get("/admin/contacts").text
    client.post("/admin/me", data={"csrf_token": token, "time_zone": "Asia/Tokyo"})
    assert "2026-07-01 21:00 JST" in client.get(f"/admin/contacts/{contact.id}").text
    bad = client.post("/admin/me", data={"csrf_token": token, "time_zone": "Mars/Olympus"}, headers=EN)
    assert bad.status_code == 422 and "Unknown time zone" in bad.text
    client.post("/admin/me", data={"csrf_token": token, "time_zone": ""})  # back to the organisation's
    assert "2026-07-01 08:00 EDT" in client.get(f"/admin/contacts/{contact.id}").text
    with ctx.db.read() as s:
        assert localtime.tenant_zone_of(s, demo.tenant_id) == "America/New_York"
        assert (
            s.scalars(select(StaffUser.time_zone).where(StaffUser.email == "owner-user@demo.example")).one()
            is None
        )


def test_topic_and_staff_names_replace_raw_ids(ctx, demo, client):
    from tests.helpers import subscribe

    subscribe(ctx, PHONE, ["angebote"])
    as_role(ctx, client, "owner")
    html = client.get("/admin/contacts", headers={"accept-language": "de"}).text
    assert ">Angebote<" in html
    audit = client.get("/admin/privacy/audit").text
    assert "owner-user@demo.example" in audit and ">user:" not in audit


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        ("Hallo {name}, vielen Dank", {}, "Hallo, vielen Dank"),
        ("Hallo {name}, vielen Dank", {"name": "Anna"}, "Hallo Anna, vielen Dank"),
        ("Hallo {first_name}!", {}, "Hallo!"),
        ("Hallo {name|Kundin}, danke", {}, "Hallo Kundin, danke"),
        ("{name}, schön dass Sie da sind", {}, "schön dass Sie da sind"),
        ("Hallo {name} und willkommen", {}, "Hallo und willkommen"),
    ],
)
def test_personalisation_leaves_no_gap_when_a_value_is_missing(template, fields, expected):
    assert personalise.render(template, fields) == expected


def test_a_canned_reply_to_a_contact_without_a_name_reads_hallo_comma(ctx, demo):
    _write(ctx, "Hallo")
    contact = contact_of(ctx, PHONE)
    with ctx.db.write() as s:
        owner = s.scalars(select(StaffUser).where(StaffUser.email == demo.admin_email)).one()
        who = Caller(demo.tenant_id, "owner", f"user:{owner.id}", owner)
        canned.save_canned_reply(s, who, "danke", "Dank", "Hallo {name}, vielen Dank für Ihre Nachricht. {x}")
        conv = s.scalars(select(Conversation).where(Conversation.contact_id == contact.id)).one()
        filled = canned.canned_for(ctx, s, who, conv.id)
    assert filled[0]["text"] == "Hallo, vielen Dank für Ihre Nachricht. {x}"  # unknown stays visible


def test_fill_keeps_unknown_variables_and_line_starts():
    import re

    var = re.compile(r"\{(\w+)\}")
    assert fill("Hi {a}\n{b}, ok", var, lambda m: "" if m.group(1) in "ab" else None) == "Hi\nok"
    assert fill("{zzz} bleibt", var, lambda m: None) == "{zzz} bleibt"


def test_staff_admin_lists_members_with_their_zone(ctx, demo):
    with ctx.db.read() as s:
        members = staff_admin.members(s, demo.tenant_id)
    assert [m.email for m in members] == [demo.admin_email] and members[0].time_zone is None


def test_the_rest_api_sets_and_clears_the_display_name(ctx, demo, client):
    from tests.flows.support import api_token, auth
    from tests.helpers import agents_see_unrouted

    _write(ctx, "Hallo", name=NAME)
    agents_see_unrouted(ctx)  # an agent names only contacts it may see (flows.inbox.scope)
    contact = contact_of(ctx, PHONE)
    token = api_token(ctx, "agent")
    r = client.put(f"/api/v1/contacts/{contact.id}/name", json={"name": "Zacharias Q."}, headers=auth(token))
    assert r.status_code == 200
    assert client.get(f"/api/v1/contacts/{contact.id}", headers=auth(token)).json()["name"] == "Zacharias Q."
    too_long = client.put(
        f"/api/v1/contacts/{contact.id}/name", json={"name": "x" * 201}, headers=auth(token)
    )
    assert too_long.status_code == 422
    viewer = api_token(ctx, "viewer")
    assert (
        client.put(
            f"/api/v1/contacts/{contact.id}/name", json={"name": "X"}, headers=auth(viewer)
        ).status_code
        == 403
    )
    client.put(f"/api/v1/contacts/{contact.id}/name", json={"name": ""}, headers=auth(token))
    with ctx.db.read() as s:
        assert s.get(Contact, contact.id).name_sealed is None
