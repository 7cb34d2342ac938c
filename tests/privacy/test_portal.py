"""Self-service page behind the INFO link: export, objection, erasure with confirmation (D1, D2, D4, T3)."""

from __future__ import annotations

import re

from sqlalchemy import select

from konsent.store.tables import Consent, Contact, PrivacyRequest
from tests.helpers import phone_texts
from tests.privacy.util import PHONE, prove, say, subscribed_contact

PORTAL = re.compile(r"http://testserver(/privacy/[A-Za-z0-9_-]{20,})")


def _portal(ctx) -> str:
    say(ctx, "DATENSCHUTZ")
    text = phone_texts(ctx, PHONE)[-1]
    assert "Demo GmbH" in text and "/demo/privacy" in text  # T3: short notice and the policy link
    found = PORTAL.search(text)
    assert found, text
    return found.group(1)


def _proven_portal(ctx, client) -> str:  # type: ignore[no-untyped-def]
    path = _portal(ctx)
    prove(ctx, client, path)
    return path


def test_erasure_on_the_page_needs_the_confirmation_box(ctx, demo, client):
    """D2: without the ticked box nothing is erased; with it, everything is, and the link is used up."""
    cid = subscribed_contact(ctx)
    path = _proven_portal(ctx, client)
    assert client.get(path).status_code == 200
    assert client.post(path + "/erase", data={}).status_code == 422
    with ctx.db.read() as s:
        assert s.get(Contact, cid).erased_at is None
    assert client.post(path + "/erase", data={"confirm": "yes"}).status_code == 200
    with ctx.db.read() as s:
        assert s.get(Contact, cid).erased_at is not None
        req = s.scalars(select(PrivacyRequest).where(PrivacyRequest.kind == "erasure")).one()
        assert (req.channel, req.state) == ("portal", "done")
    # The link was erased with everything else: it is now simply unknown.
    assert client.get(path).status_code == 404
    assert client.post(path + "/erase", data={"confirm": "yes"}).status_code == 404


def test_objection_on_the_page_withdraws_every_topic(ctx, demo, client):
    """D4: one click withdraws every marketing purpose and sets the objection."""
    cid = subscribed_contact(ctx)
    path = _proven_portal(ctx, client)
    assert client.post(path + "/object").status_code == 200
    with ctx.db.read() as s:
        assert s.get(Contact, cid).objected_marketing is True
        assert {r.status for r in s.scalars(select(Consent))} == {"withdrawn"}


def test_portal_export_downloads_once(ctx, demo, client):
    """D1: the self-service page hands out the ZIP; the link then is used up."""
    subscribed_contact(ctx)
    path = _proven_portal(ctx, client)
    first = client.post(path + "/export")
    assert first.status_code == 200 and first.headers["content-type"] == "application/zip"
    assert client.post(path + "/export").status_code == 410


def test_forged_portal_link_is_404(ctx, demo, client):
    assert client.get("/privacy/" + "x" * 43).status_code == 404
    assert client.post("/privacy/" + "x" * 43 + "/erase", data={"confirm": "yes"}).status_code == 404


def test_contact_corrects_own_name_on_the_page(ctx, demo, client):
    """D3: the contact rectifies the name; audited as 'contact', logged as a portal request."""
    from sqlalchemy import select

    from konsent.flows.contacts import contact_name
    from konsent.store.tables import AuditEntry

    cid = subscribed_contact(ctx)
    path = _proven_portal(ctx, client)
    assert client.post(path + "/rectify", data={"name": ""}).status_code == 422
    assert client.post(path + "/rectify", data={"name": "Erika Beispiel"}).status_code == 200
    with ctx.db.read() as s:
        assert contact_name(ctx, s, s.get(Contact, cid)) == "Erika Beispiel"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.rectify")).one()
        assert entry.actor == "contact"
        req = s.scalars(select(PrivacyRequest).where(PrivacyRequest.kind == "rectification")).one()
        assert req.channel == "portal"
    assert client.post(path + "/rectify", data={"name": "Again"}).status_code == 410
