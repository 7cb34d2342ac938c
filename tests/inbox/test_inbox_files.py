# ruff: noqa: F811
"""Agents' file uploads in the inbox: limits with clear 4xx, sealed at rest, served only to staff of
the conversation's team, active content never inline, sent through the channel's media path by a
short-lived signed link the provider fetches (M1, S1, S3, S8, #17)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from sqlalchemy import func, select

from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.flows.inbox import attachments, conversation
from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy.rights import erase_contact
from konsent.store.tables import (
    AuditEntry,
    Contact,
    ContactIdentity,
    Conversation,
    InboxAttachment,
    Message,
)
from konsent.store.types import utcnow
from tests.channels import fixtures_meta as fx
from tests.channels.fixtures_meta import fake  # noqa: F401  (pytest fixture)
from tests.inbox.conftest import Crew, conversation_of, drain, say, sign_in

ERIKA = "+491701111111"
MAX = "+491702222222"
PDF = b"%PDF-1.4\n% Angebot fuer Erika Muster, Kundennummer 4711\n" + b"x" * 2000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'


@pytest.fixture(autouse=True)
def _public_url(ctx: Konsent) -> None:
    """Providers fetch the signed link: the installation's public URL is https (127.0.0.1 may be http)."""
    ctx.settings.base_url = "https://konsent.example"


def _sales_and_support(ctx: Konsent, crew: Crew) -> tuple[int, int]:
    say(ctx, crew, ERIKA, "Hallo", name="Erika Muster")
    say(ctx, crew, ERIKA, "Kaufen")  # routed to sales (Anna)
    say(ctx, crew, MAX, "Hallo", name="Max Beispiel")
    say(ctx, crew, MAX, "Hilfe")  # routed to support (Sven)
    return conversation_of(ctx, crew, ERIKA).id, conversation_of(ctx, crew, MAX).id


def _upload(client: Any, conv: int, csrf: str, name: str, data: bytes, mime: str, text: str = "") -> Any:
    return client.post(
        f"/admin/inbox/{conv}/reply",
        data={"csrf_token": csrf, "text": text},
        files={"file": (name, data, mime)},
        headers={"Accept-Language": "de"},
        follow_redirects=False,
    )


def _file_ids(ctx: Konsent) -> list[int]:
    with ctx.db.read() as s:
        return list(s.scalars(select(InboxAttachment.id).order_by(InboxAttachment.id)))


def test_a_file_too_large_or_of_a_refused_type_is_refused_with_4xx_and_nothing_is_stored(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """Size and type limits are configurable; over them: 413 / 415 with the reason in German."""
    erika, _ = _sales_and_support(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    with ctx.db.read() as s:
        before = s.scalar(select(func.count()).select_from(Message))
    ctx.settings.upload_max_bytes = 1000
    big = _upload(client, erika, csrf, "angebot.pdf", PDF, "application/pdf")
    assert big.status_code == 413 and "Die Datei ist größer als 1 MB." in big.text
    ctx.settings.upload_max_bytes = 10_000_000
    html = _upload(client, erika, csrf, "seite.html", b"<html><script>x</script></html>", "text/html")
    assert (
        html.status_code == 415
        and "Dateien dieses Typs können nicht angehängt werden: text/html." in html.text
    )
    svg = _upload(client, erika, csrf, "logo.svg", SVG, "image/svg+xml")
    assert svg.status_code == 415
    empty = _upload(client, erika, csrf, "leer.pdf", b"", "application/pdf")
    assert empty.status_code == 422
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == before
    assert _file_ids(ctx) == []
    ctx.settings.upload_mime_types = "application/pdf"
    only_pdf = _upload(client, erika, csrf, "foto.png", PNG, "image/png")
    assert only_pdf.status_code == 415
    ok = _upload(client, erika, csrf, "angebot.pdf", PDF, "application/pdf", "Ihr Angebot")
    assert ok.status_code == 303 and len(_file_ids(ctx)) == 1


def test_an_upload_is_sealed_at_rest_and_gone_with_the_erased_contact(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """S1: neither the file's bytes nor its name are in the database in clear; erasure removes them."""
    erika, _ = _sales_and_support(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    assert _upload(client, erika, csrf, "Angebot Erika Muster.pdf", PDF, "application/pdf").status_code == 303
    with ctx.db.read() as s:
        row = s.scalars(select(InboxAttachment)).one()
        assert row.size == len(PDF) and row.mime == "application/pdf" and row.kind == "document"
        assert (
            b"Erika" not in row.data_sealed
            and b"4711" not in row.data_sealed
            and b"%PDF" not in row.data_sealed
        )
        assert b"Erika" not in row.filename_sealed and b"Angebot" not in row.filename_sealed
        msg = s.get(Message, row.message_id)
        assert msg is not None and b"Angebot" not in msg.body_sealed
        contact = s.get(Contact, row.contact_id)
        assert contact is not None
    with ctx.db.write() as s:
        contact = s.get(Contact, contact.id)
        assert contact is not None
        erase_contact(ctx, s, contact, source="staff", actor="user:1")
    assert _file_ids(ctx) == []


def test_the_contacts_data_export_holds_every_file_agents_sent_them_byte_for_byte(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """D1, Art. 15/20: what an agent sent the contact is part of the contact's data; another
    contact's file is not in it."""
    erika, max_conv = _sales_and_support(ctx, crew)
    anna = sign_in(client, ctx, crew.users["anna"])
    assert _upload(client, erika, anna, "Angebot Erika.pdf", PDF, "application/pdf").status_code == 303
    assert _upload(client, erika, anna, "plan.png", PNG, "image/png").status_code == 303
    client.cookies.clear()
    sven = sign_in(client, ctx, crew.users["sven"])
    assert _upload(client, max_conv, sven, "max.pdf", PDF + b"max", "application/pdf").status_code == 303
    with ctx.db.write() as s:
        contact = s.get(Contact, conversation_of(ctx, crew, ERIKA).contact_id)
        assert contact is not None
        blob = privacy_export.build_export(ctx, s, contact)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        data = json.loads(zf.read("data.json"))
        listed = {f["name"]: f for f in data["files"]}
        assert set(listed) == {"Angebot Erika.pdf", "plan.png"}
        assert zf.read(listed["Angebot Erika.pdf"]["path"]) == PDF
        assert zf.read(listed["plan.png"]["path"]) == PNG
        assert listed["plan.png"]["type"] == "image/png" and listed["plan.png"]["size"] == len(PNG)
        page = zf.read("index.html").decode()  # the readable page, in the contact's language (U2)
        assert "Angebot Erika.pdf" in page and "Dateien, die Sie erhalten haben" in page
        assert not [n for n in zf.namelist() if "max" in n]


def test_staff_outside_the_team_and_roles_without_the_inbox_cannot_open_an_upload(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """S3: Anna's file in a sales conversation: Sven (support) 404, the viewer 403, anonymous to sign-in;
    the owner may, and the access is audited."""
    erika, support = _sales_and_support(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    assert _upload(client, erika, csrf, "angebot.pdf", PDF, "application/pdf").status_code == 303
    [fid] = _file_ids(ctx)
    url = f"/admin/inbox/{erika}/files/{fid}"
    assert client.get(url).content == PDF
    assert client.get(f"/admin/inbox/{support}/files/{fid}").status_code == 404  # wrong conversation
    client.cookies.clear()
    assert client.get(url, follow_redirects=False).headers.get("location") == "/admin/login"
    sign_in(client, ctx, crew.users["sven"])
    assert client.get(url).status_code == 404
    client.cookies.clear()
    sign_in(client, ctx, crew.users["viewer"])
    assert client.get(url).status_code == 403
    client.cookies.clear()
    sign_in(client, ctx, crew.users["owner"])
    assert client.get(url).content == PDF
    with ctx.db.read() as s:
        views = s.scalars(select(AuditEntry).where(AuditEntry.action == "attachment.view")).all()
        assert [v.actor for v in views] == [f"user:{crew.users['anna'].id}", f"user:{crew.users['owner'].id}"]


def test_active_content_is_always_a_download_never_rendered_inline(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """S8: an SVG with a script (where the operator allows SVG) and HTML disguised as text are served as
    `attachment`, `application/octet-stream`, `nosniff`, sandboxed; a real PNG may show inline."""
    erika, _ = _sales_and_support(ctx, crew)
    ctx.settings.upload_mime_types = "image/svg+xml,text/plain,image/png"
    csrf = sign_in(client, ctx, crew.users["anna"])
    for name, data, mime in (
        ("logo.svg", SVG, "image/svg+xml"),
        ("notiz.txt", b"<html><body onload=alert(1)>hi</body></html>", "text/plain"),
        ("bild.png", PNG, "image/png"),
    ):
        assert _upload(client, erika, csrf, name, data, mime).status_code == 303
    svg, txt, png = _file_ids(ctx)
    for fid in (svg, txt):
        r = client.get(f"/admin/inbox/{erika}/files/{fid}?inline=1")
        assert r.status_code == 200
        assert r.headers["content-disposition"].startswith("attachment;")
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in r.headers["content-security-policy"]
    image = client.get(f"/admin/inbox/{erika}/files/{png}?inline=1")
    assert (
        image.headers["content-disposition"].startswith("inline;")
        and image.headers["content-type"] == "image/png"
    )
    plain = client.get(f"/admin/inbox/{erika}/files/{png}")
    assert plain.headers["content-disposition"].startswith("attachment;")


def test_the_simulator_gets_the_file_by_a_signed_link_that_opens_only_that_file_and_expires(
    ctx: Konsent, crew: Crew, client: Any
) -> None:
    """The reply goes through the channel's media path; the link works for the provider (no session),
    only for that file, only until it expires; staff's view names the file, never the link."""
    erika, _ = _sales_and_support(ctx, crew)
    csrf = sign_in(client, ctx, crew.users["anna"])
    assert (
        _upload(client, erika, csrf, "angebot.pdf", PDF, "application/pdf", "Ihr Angebot").status_code == 303
    )
    assert _upload(client, erika, csrf, "bild.png", PNG, "image/png").status_code == 303
    first, second = _file_ids(ctx)
    drain(ctx)
    received = simulator.phone_inbox(ctx, crew.account_id, ERIKA)  # what Erika's phone got
    links = [m.media["url"] for m in received if m.media and "/files/" in m.media.get("url", "")]
    assert len(links) == 2, "the simulator's phone received no file link"
    assert [m.media["kind"] for m in received if m.media] == ["document", "image"]
    link = next(u for u in links if u.split("/files/", 1)[1].startswith(f"{first}-"))
    path = urlsplit(link).path
    client.cookies.clear()  # the provider has no session
    got = client.get(path)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-disposition"].startswith("attachment;")
    token = path.split("/")[2]
    att_id, expires, sig = token.split("-")
    other = f"/files/{second}-{expires}-{sig}/x"
    assert client.get(other).status_code == 404  # the signature is for the first file only
    longer = f"/files/{att_id}-{int(expires) + 3600}-{sig}/x"
    assert client.get(longer).status_code == 404  # the expiry is signed too
    with time_machine.travel(utcnow() + timedelta(seconds=ctx.settings.upload_link_seconds + 60)):
        assert client.get(path).status_code == 404
    sign_in(client, ctx, crew.users["anna"])
    page = client.get(f"/admin/inbox/{erika}").text
    assert "angebot.pdf" in page and "/files/" + token not in page
    with ctx.db.read() as s:
        out = s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id.desc())).first()
        assert out is not None and out.secret_sealed is None  # sent: the link is not kept


def test_whatsapp_fake_receives_the_document_with_its_file_name_and_can_fetch_it(
    ctx: Konsent, crew: Crew, client: Any, fake: Any
) -> None:
    """WhatsApp Cloud API: `type: document` with `link`, `filename` and the caption, over real HTTP;
    the link konsent handed out returns the same bytes."""
    ctx.settings.base_url = "https://konsent.example"
    conn = fx.connect(ctx, "whatsapp", fake)
    assert fx.deliver(client, conn, [fake.user_text(fx.WA_PHONE_ID, "4915112345678", "Angebot bitte")]) == [
        200
    ]
    fake.take_outgoing()
    fake.accepted.clear()
    with ctx.db.read() as s:
        ident = s.scalars(
            select(ContactIdentity).where(ContactIdentity.channel_account_id == conn.account_id)
        ).one()
        conv = s.scalars(select(Conversation.id).where(Conversation.contact_id == ident.contact_id)).one()
    with ctx.db.write() as s:
        upload = attachments.Upload("Angebot 2026.pdf", "application/pdf", PDF)
        attachments.reply_with_file(ctx, s, crew.caller("admin"), conv, "Ihr Angebot", upload)
    drain(ctx)
    [doc] = [a["body"] for a in fake.accepted if a["body"].get("type") == "document"]
    assert doc["document"]["filename"] == "Angebot 2026.pdf" and doc["document"]["caption"] == "Ihr Angebot"
    link = doc["document"]["link"]
    assert link.startswith("https://konsent.example/files/")
    assert client.get(urlsplit(link).path).content == PDF
    with ctx.db.write() as s:
        view = conversation.view_conversation(ctx, s, crew.caller("admin"), conv)
    [mine] = [m for m in view.messages if m.attachment_id]
    assert (mine.attachment_name, mine.attachment_kind, mine.media_url) == (
        "Angebot 2026.pdf",
        "document",
        "",
    )
