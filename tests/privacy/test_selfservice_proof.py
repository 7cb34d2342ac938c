"""Self-service links that staff may see do not let staff act as the contact (D1-D4, S8, #13 finding 3).

The INFO and DATEN answers are stored and shown redacted everywhere staff look (inbox, contact
page, API, staff export); even the clear link needs a code that only the contact's messenger
receives before anything can be downloaded, changed or erased."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

import time_machine
from sqlalchemy import select

from konsent.flows.privacy import proof_code
from konsent.store.tables import Contact, Conversation, Message, PrivacyExport, PrivacyRequest
from konsent.store.types import utcnow
from tests.helpers import phone_texts
from tests.privacy.util import NAME, PHONE, prove, say, subscribed_contact
from tests.web.test_admin_auth import as_role

PORTAL = re.compile(r"http://testserver(/privacy/[A-Za-z0-9_-]{20,})")
EXPORT = re.compile(r"http://testserver(/privacy/export/[A-Za-z0-9_-]{20,})")
CODE = re.compile(r"\bPR\d{6}\b")


def _links(ctx) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The contact asks with INFO and DATEN; the two links as the phone received them."""
    say(ctx, "INFO")
    portal = PORTAL.search(phone_texts(ctx, PHONE)[-1])
    say(ctx, "DATEN")
    export = EXPORT.search(phone_texts(ctx, PHONE)[-1])
    assert portal and export
    return portal.group(1), export.group(1)


def _secrets(path: str) -> str:
    return path.rsplit("/", 1)[1]


def test_staff_see_links_and_codes_redacted_on_every_page_api_and_export(ctx, demo, client):
    """S8: the tokens and the proof code appear nowhere staff look; the clear copy kept for delivery
    is gone once sent."""
    cid = subscribed_contact(ctx)
    portal, export = _links(ctx)
    assert client.post(portal + "/code").status_code == 200
    from tests.conftest import drain

    drain(ctx)
    code = CODE.findall(phone_texts(ctx, PHONE)[-1])[-1]
    token = as_role(ctx, client, "owner")
    with ctx.db.read() as s:
        conv = s.scalars(select(Conversation.id).where(Conversation.contact_id == cid)).first()
        assert all(m is None for m in s.scalars(select(Message.secret_sealed)))  # all sent: cleared
    views = [
        client.get(f"/admin/contacts/{cid}").text,
        client.get(f"/admin/inbox/{conv}/thread").text,
        client.get(f"/admin/inbox/{conv}").text,
        client.get(f"/api/v1/contacts/{cid}/messages", headers={"x-csrf-token": token}).text,
    ]
    zipped = client.post(f"/admin/privacy/contacts/{cid}/export", data={"csrf_token": token})
    assert zipped.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(zipped.content))
    views += [zf.read("data.json").decode(), zf.read("index.html").decode()]
    assert any("/privacy/" in v for v in views)  # the answers are there, only redacted
    for view in views:
        for secret in (_secrets(portal), _secrets(export), code):
            assert secret not in view


def test_the_link_alone_downloads_changes_and_erases_nothing(ctx, demo, client):
    """S8: whoever has only the link (staff who saw it in clear, a forwarded message) gets the code
    step back from every action; nothing happens and nothing is logged."""
    cid = subscribed_contact(ctx)
    portal, export = _links(ctx)
    page = client.get(portal + "?lang=en")
    assert (
        page.status_code == 200
        and "Send me a code" in page.text
        and "Erase my data</button>" not in page.text
    )
    for action, data in (
        ("/export", {}),
        ("/object", {}),
        ("/rectify", {"name": "X"}),
        ("/erase", {"confirm": "yes"}),
    ):
        r = client.post(portal + action, data=data, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == portal, action
    r = client.post(export, follow_redirects=False)
    assert r.status_code == 303 and "application/zip" not in r.headers.get("content-type", "")
    client.cookies.set("konsent_privacy", "made-up", path="/privacy")
    assert client.post(portal + "/erase", data={"confirm": "yes"}, follow_redirects=False).status_code == 303
    with ctx.db.read() as s:
        contact = s.get(Contact, cid)
        assert contact.erased_at is None and not contact.objected_marketing
        assert s.scalars(select(PrivacyExport.downloaded_at)).one() is None
        kinds = sorted(r.kind for r in s.scalars(select(PrivacyRequest)))
        assert kinds == ["access"]  # only the DATEN request itself


def test_wrong_codes_are_refused_and_the_attempts_are_bounded(ctx, demo, client):
    """A guessed code fails; after MAX_ATTEMPTS even the right code no longer opens the page."""
    subscribed_contact(ctx)
    portal, _ = _links(ctx)
    client.post(portal + "/code")
    from tests.conftest import drain

    drain(ctx)
    code = CODE.findall(phone_texts(ctx, PHONE)[-1])[-1]
    wrong = "PR" + str((int(code[2:]) + 1) % 1_000_000).zfill(6)
    for _ in range(proof_code.MAX_ATTEMPTS):
        assert client.post(portal + "/verify", data={"code": wrong}).status_code == 403
    assert client.post(portal + "/verify", data={"code": code}, follow_redirects=False).status_code == 403
    assert not client.cookies.get("konsent_privacy")


def test_codes_and_links_expire_soon(ctx, demo, client):
    """Short expiry: a code after CODE_MINUTES, the proof session after SESSION_MINUTES, the portal
    link after a day."""
    subscribed_contact(ctx)
    portal, _ = _links(ctx)
    client.post(portal + "/code")
    from tests.conftest import drain

    drain(ctx)
    code = CODE.findall(phone_texts(ctx, PHONE)[-1])[-1]
    with time_machine.travel(utcnow() + timedelta(minutes=proof_code.CODE_MINUTES + 1)):
        assert client.post(portal + "/verify", data={"code": code}).status_code == 403
    prove(ctx, client, portal)
    with time_machine.travel(utcnow() + timedelta(minutes=proof_code.SESSION_MINUTES + 1)):
        r = client.post(portal + "/object", follow_redirects=False)
        assert r.status_code == 303
    with time_machine.travel(utcnow() + timedelta(hours=25)):
        assert client.get(portal).status_code == 410


def test_the_contact_with_the_code_erases_once_and_the_log_says_how(ctx, demo, client):
    """D2, D5: with the code from their own messenger the contact erases; the request log records
    the portal, the contact and the proof; the link cannot be used again."""
    cid = subscribed_contact(ctx)
    portal, _ = _links(ctx)
    prove(ctx, client, portal)
    assert client.post(portal + "/erase", data={"confirm": "yes"}).status_code == 200
    with ctx.db.read() as s:
        assert s.get(Contact, cid).erased_at is not None
        req = s.scalars(select(PrivacyRequest).where(PrivacyRequest.kind == "erasure")).one()
        assert (req.channel, req.state, req.handled_by) == ("portal", "done", "contact (code via messenger)")
    assert client.post(portal + "/erase", data={"confirm": "yes"}).status_code == 404


def test_the_contact_with_the_code_downloads_the_export_once(ctx, demo, client):
    subscribed_contact(ctx)
    _, export = _links(ctx)
    prove(ctx, client, export)
    r = client.post(export)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert NAME in zipfile.ZipFile(io.BytesIO(r.content)).read("data.json").decode()
    assert client.post(export).status_code == 410


def test_a_proof_for_one_link_does_not_open_another(ctx, demo, client):
    subscribed_contact(ctx)
    portal, export = _links(ctx)
    prove(ctx, client, portal)
    assert client.post(export, follow_redirects=False).status_code == 303
