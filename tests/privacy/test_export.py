"""Access and portability: DATEN → one-time link → ZIP with data.json and index.html (D1, S4)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta

from sqlalchemy import select

from konsent.flows.privacy import export as privacy_export
from konsent.store.tables import AuditEntry, PrivacyExport, PrivacyRequest
from tests.helpers import phone_texts
from tests.privacy.util import NAME, PHONE, SECRET_TEXT, prove, say, subscribed_contact

LINK = re.compile(r"http://testserver(/privacy/export/[A-Za-z0-9_-]+)")


def _export_link(ctx) -> str:
    say(ctx, "MEINE DATEN")
    found = LINK.search(phone_texts(ctx, PHONE)[-1])
    assert found, phone_texts(ctx, PHONE)[-1]
    return found.group(1)


def test_keyword_gives_one_time_link_to_zip_with_json_and_html(ctx, demo, client):
    """D1: the ZIP holds profile, consents with proof, conversations, messages and statuses."""
    subscribed_contact(ctx)
    path = _export_link(ctx)
    prove(ctx, client, path)
    page = client.get(path)
    assert (page.status_code == 200 and "Download" in page.text) or "herunterladen" in page.text
    assert page.headers["cache-control"] == "no-store"
    resp = client.post(path)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(resp.content))
    assert sorted(zf.namelist()) == ["data.json", "index.html"]
    data = json.loads(zf.read("data.json"))
    assert data["format"] == "konsent-export/1"
    assert data["profile"]["name"] == NAME
    assert data["profile"]["identities"][0]["address"] == PHONE
    assert data["consents"][0]["purpose"] == "newsletter:angebote"
    assert data["consent_proof"]["ledger"][0]["action"] == "granted"
    assert data["consent_proof"]["chain_verification"]["ok"] is True
    texts = [m["text"] for c in data["conversations"] for m in c["messages"]]
    assert SECRET_TEXT in texts and "MEINE DATEN" in texts
    statuses = {m["status"] for c in data["conversations"] for m in c["messages"]}
    assert "received" in statuses and ("sent" in statuses or "delivered" in statuses)
    assert SECRET_TEXT in zf.read("index.html").decode()
    with ctx.db.read() as s:
        row = s.scalars(select(PrivacyExport)).one()
        assert row.content_sealed is None and row.downloaded_at is not None  # deleted on download
        req = s.scalars(select(PrivacyRequest)).one()
        assert (req.kind, req.channel, req.state) == ("access", "keyword", "done")


def test_reused_forged_and_expired_links_reveal_nothing(ctx, demo, client):
    """D1 bad input: reused → 410, forged → 404, expired → 410, all with the same neutral page."""
    subscribed_contact(ctx)
    path = _export_link(ctx)
    prove(ctx, client, path)
    assert client.post(path).status_code == 200
    reused = client.post(path)
    assert reused.status_code == 410 and "application/zip" not in reused.headers["content-type"]
    assert client.get(path).status_code == 410
    forged = client.get("/privacy/export/" + "A" * 43)
    assert forged.status_code == 404 and NAME not in forged.text and PHONE not in forged.text
    assert client.post("/privacy/export/" + "A" * 43).status_code == 404
    path2 = _export_link(ctx)
    prove(ctx, client, path2)
    with ctx.db.write() as s:
        for row in s.scalars(select(PrivacyExport).where(PrivacyExport.downloaded_at.is_(None))):
            row.expires_at = row.created_at - timedelta(seconds=1)
    assert client.post(path2).status_code == 410


def test_export_file_is_sealed_with_the_contact_key(ctx, demo):
    """D1, S1: a stored, not yet downloaded export holds no clear text."""
    subscribed_contact(ctx)
    _export_link(ctx)
    with ctx.db.read() as s:
        blob = s.scalars(select(PrivacyExport)).one().content_sealed
    assert blob and b"data.json" not in blob and SECRET_TEXT.encode() not in blob


def test_staff_export_is_audited_and_logged_as_request(ctx, demo):
    """D1, S4: a staff export writes an audit entry and a completed request."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        blob = privacy_export.staff_export(ctx, s, demo.tenant_id, "user:7", cid)
    data = json.loads(zipfile.ZipFile(io.BytesIO(blob)).read("data.json"))
    assert data["profile"]["id"] == cid
    with ctx.db.read() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.export")).one()
        assert (entry.actor, entry.subject) == ("user:7", f"contact:{cid}")
        req = s.scalars(select(PrivacyRequest)).one()
        assert (req.channel, req.handled_by) == ("staff", "user:7")


def test_export_reads_2000_messages_with_as_many_queries_as_20(ctx, demo):
    """D1: the export of a long history needs no query per message (an N+1 export of a busy
    contact would time out the contact's download); bench/ measures its speed."""
    from sqlalchemy import event

    from konsent.flows.contacts import get_contact, seal_for_contact
    from konsent.store.tables import Message

    cid = subscribed_contact(ctx)

    def add_messages(n: int) -> None:
        with ctx.db.write() as s:
            c = get_contact(s, demo.tenant_id, cid)
            body = seal_for_contact(ctx, s, c, "message", json.dumps({"text": "hello"}))
            acc_id = s.scalars(select(Message.channel_account_id)).first()
            s.add_all(
                Message(
                    tenant_id=demo.tenant_id,
                    contact_id=cid,
                    channel_account_id=acc_id,
                    direction="in",
                    body_sealed=body,
                    status="received",
                )
                for _ in range(n)
            )

    def export() -> tuple[int, int]:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        with ctx.db.read() as s:
            c = get_contact(s, demo.tenant_id, cid)
            event.listen(ctx.db.engine, "before_cursor_execute", count)
            try:
                blob = privacy_export.build_zip(privacy_export.export_data(ctx, s, c))
            finally:
                event.remove(ctx.db.engine, "before_cursor_execute", count)
        messages = json.loads(zipfile.ZipFile(io.BytesIO(blob)).read("data.json"))["other_messages"]
        return len(messages), len(statements)

    add_messages(20)
    few, queries_for_few = export()
    add_messages(1980)
    many, queries_for_many = export()
    assert (few, many) == (20, 2000)
    assert queries_for_many == queries_for_few, (queries_for_few, queries_for_many)
