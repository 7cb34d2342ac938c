"""Admin broadcast pages: compose with preview, send, live progress, funnel, permissions (M3, U3)."""

from __future__ import annotations

from sqlalchemy import func, select

from konsent.store.tables import Broadcast
from tests.broadcast.seed import seed
from tests.conftest import drain
from tests.helpers import phone_texts, sim_account
from tests.web.test_admin_auth import as_role, form_token


def _compose(client, token, **fields):  # type: ignore[no-untyped-def]
    data = {"csrf_token": token, "name": "Advent", "topic": "angebote", "text": "Hallo {first_name|du}!"}
    data.update(fields)
    return client.post("/admin/broadcasts", data=data, follow_redirects=True)


def test_admin_composes_previews_sends_and_watches_a_broadcast(ctx, demo, client):
    """Compose → audience preview → send now → progress JSON and funnel SVG show the outcome (M3, U3)."""
    seed(ctx, sim_account(ctx).id, ["+4915130000001", "+4915130000002"])
    token = as_role(ctx, client, "admin")
    r = _compose(client, token)
    assert r.status_code == 200 and r.url.path == "/admin/broadcasts/1"
    assert "Audience now: 2" in r.text or "Zielgruppe jetzt: 2" in r.text
    r = client.post(
        "/admin/broadcasts/1/send", data={"csrf_token": form_token(r.text)}, follow_redirects=True
    )
    assert r.status_code == 200
    from konsent.flows.outbound import broadcast as bc

    bc.run_due(ctx)
    drain(ctx)
    bc.run_due(ctx)
    assert phone_texts(ctx, "+4915130000001") == ["Hallo Erika!"]
    p = client.get("/admin/broadcasts/1/progress.json").json()
    assert (p["state"], p["stats"]["sent"], p["total"]) == ("done", 2, 2)
    svg = client.get("/admin/broadcasts/1/funnel.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "<rect" in svg.text and ">2</text>" in svg.text
    assert "Advent" in client.get("/admin/broadcasts").text


def test_bad_broadcast_form_shows_the_reason_and_stores_nothing(ctx, demo, client):
    """Unknown variable → 422 with the reason, no broadcast row."""
    token = as_role(ctx, client, "admin")
    r = _compose(client, token, text="Hi {iban}")
    assert r.status_code == 422
    assert "iban" in r.text
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0


def test_viewer_sees_broadcasts_but_cannot_send(ctx, demo, client):
    """Sending marketing is for owners and admins; a viewer gets 403."""
    token = as_role(ctx, client, "viewer")
    assert client.get("/admin/broadcasts").status_code == 200
    r = _compose(client, token)
    assert r.status_code == 403


def test_pause_and_cancel_from_the_admin(ctx, demo, client):
    """Pause then cancel; a paused broadcast cannot be paused again (409 with the reason)."""
    seed(ctx, sim_account(ctx).id, ["+4915130000011"])
    token = as_role(ctx, client, "owner")
    r = _compose(client, token)
    token = form_token(r.text)
    client.post("/admin/broadcasts/1/send", data={"csrf_token": token})
    r = client.post("/admin/broadcasts/1/pause", data={"csrf_token": token}, follow_redirects=True)
    assert client.get("/admin/broadcasts/1/progress.json").json()["state"] == "paused"
    r = client.post("/admin/broadcasts/1/pause", data={"csrf_token": token})
    assert r.status_code == 409
    client.post("/admin/broadcasts/1/cancel", data={"csrf_token": token})
    assert client.get("/admin/broadcasts/1/progress.json").json()["state"] == "cancelled"
    assert drain(ctx) == 0
    assert client.get("/admin/broadcasts/999/progress.json").status_code == 404


def test_compose_form_offers_labels_and_fields_and_narrows_the_audience(ctx, demo, client):
    """M3: the form lists the labels in use and the collected fields; choosing one narrows the audience."""
    from konsent.flows.inbox import bot
    from konsent.store.tables import Contact
    from konsent.store.types import utcnow

    ids = seed(ctx, sim_account(ctx).id, ["+4915130000011", "+4915130000012"])
    with ctx.db.write() as s:
        bot.store_field(ctx, s, s.get(Contact, ids[0]), "kundennummer", "K-1", utcnow())
    token = as_role(ctx, client, "admin")
    page = client.get("/admin/broadcasts", headers={"accept-language": "de"})
    assert "Hat das Feld" in page.text and "<option>kundennummer</option>" in page.text
    assert "{kundennummer}" in page.text
    r = _compose(client, token, has_field="kundennummer", text="Ihre Nummer {kundennummer}")
    assert r.status_code == 200 and r.url.path == "/admin/broadcasts/1"
    assert "Audience now: 1" in r.text or "Zielgruppe jetzt: 1" in r.text
