"""Admin privacy centre: request log with overdue warnings, staff rights actions, audit, retention, import,
documents (D1-D5, S4, L1, C7, T1, T2)."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

from sqlalchemy import select

from konsent.flows.privacy import rights as privacy
from konsent.store.tables import AuditEntry, Contact, PrivacyRequest, RetentionRule
from konsent.store.types import utcnow
from tests.helpers import agents_see_unrouted
from tests.privacy.util import NAME, PHONE, subscribed_contact
from tests.web.test_admin_auth import as_role

EN = {"accept-language": "en"}


def test_overdue_request_is_warned_and_can_be_closed(ctx, demo, client):
    """D5: an old request shows as overdue; closing it records who handled it."""
    token = as_role(ctx, client, "dpo")
    with ctx.db.write() as s:
        rid = privacy.log_request(
            s, demo.tenant_id, "erasure", "letter", received_at=utcnow() - timedelta(days=35)
        ).id
    page = client.get("/admin/privacy", headers=EN)
    assert page.status_code == 200 and "1 requests are overdue" in page.text and "overdue" in page.text
    r = client.post(f"/admin/privacy/requests/{rid}/close", data={"state": "done", "csrf_token": token})
    assert r.status_code == 200 and "overdue." not in r.text
    with ctx.db.read() as s:
        req = s.get(PrivacyRequest, rid)
        assert req.state == "done" and req.handled_by.startswith("user:")


def test_staff_enter_request_from_letter_and_bad_input_is_refused(ctx, demo, client):
    """D5: a request received by letter is logged with its due date; a bad kind or date stores nothing."""
    token = as_role(ctx, client, "dpo")
    ok = client.post(
        "/admin/privacy/requests",
        data={"kind": "access", "channel": "letter", "received": "2026-11-02", "csrf_token": token},
    )
    assert ok.status_code == 200
    bad = client.post(
        "/admin/privacy/requests", data={"kind": "gossip", "channel": "letter", "csrf_token": token}
    )
    assert bad.status_code == 422
    bad_date = client.post(
        "/admin/privacy/requests",
        data={"kind": "access", "channel": "letter", "received": "yesterday", "csrf_token": token},
    )
    assert bad_date.status_code == 422
    no_csrf = client.post("/admin/privacy/requests", data={"kind": "access", "channel": "letter"})
    assert no_csrf.status_code == 403
    with ctx.db.read() as s:
        rows = s.scalars(select(PrivacyRequest)).all()
        assert len(rows) == 1 and rows[0].due_at.date().isoformat() == "2026-12-02"


def test_staff_export_rectify_object_erase_are_audited(ctx, demo, client):
    """D1-D4, S4: each staff action on personal data writes an audit entry; erasure needs confirmation."""
    cid = subscribed_contact(ctx)
    token = as_role(ctx, client, "agent")
    agents_see_unrouted(ctx)  # the contact's conversation has no team yet
    assert client.get(f"/admin/privacy/contacts/{cid}", headers=EN).status_code == 200
    r = client.post(f"/admin/privacy/contacts/{cid}/export", data={"csrf_token": token})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert NAME in zipfile.ZipFile(io.BytesIO(r.content)).read("data.json").decode()
    client.post(f"/admin/privacy/contacts/{cid}/rectify", data={"name": "E. M.", "csrf_token": token})
    client.post(f"/admin/privacy/contacts/{cid}/object", data={"channel": "phone", "csrf_token": token})
    wrong = client.post(f"/admin/privacy/contacts/{cid}/erase", data={"confirm": "1234", "csrf_token": token})
    assert wrong.status_code == 422
    with ctx.db.read() as s:
        assert s.get(Contact, cid).erased_at is None
    r = client.post(
        f"/admin/privacy/contacts/{cid}/erase",
        data={"confirm": str(cid), "channel": "email", "csrf_token": token},
    )
    assert r.status_code == 200
    with ctx.db.read() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert s.get(Contact, cid).erased_at is not None
    for action in ("contact.export", "contact.rectify", "contact.object", "contact.erase"):
        assert action in actions
    assert client.get(f"/admin/privacy/contacts/{cid}").status_code == 404


def test_viewer_cannot_use_privacy_actions_and_other_tenants_are_404(ctx, demo, client):
    """S2, S3: a viewer is refused; another tenant's contact id is simply not found."""
    cid = subscribed_contact(ctx)
    token = as_role(ctx, client, "viewer")
    r = client.post(f"/admin/privacy/contacts/{cid}/export", data={"csrf_token": token})
    assert r.status_code == 403
    assert client.get("/admin/privacy/contacts/999999").status_code == 403  # no permission at all


def test_other_tenants_contact_is_not_found(ctx, demo, client):
    """S2: another tenant's contact id is simply not found."""
    from konsent.flows.contacts import get_or_create_contact
    from konsent.flows.organisation import tenants

    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        acc = tenants.create_channel_account(
            ctx, s, other, "simulator", "Sim", secrets_={"webhook_secret": "x"}
        )
        other_cid = get_or_create_contact(ctx, s, acc, "+4917000000000")[0].id
    token = as_role(ctx, client, "owner")
    assert client.get(f"/admin/privacy/contacts/{other_cid}").status_code == 404
    r = client.post(f"/admin/privacy/contacts/{other_cid}/export", data={"csrf_token": token})
    assert r.status_code == 404


def test_audit_page_lists_entries_without_personal_data_and_verifies(ctx, demo, client):
    """S4: the admin lists the audit log and checks its chain."""
    cid = subscribed_contact(ctx)
    as_role(ctx, client, "owner")
    client.get(f"/admin/contacts/{cid}")
    page = client.get("/admin/privacy/audit?verify=1", headers=EN)
    assert page.status_code == 200 and "contact.view" in page.text and "intact" in page.text
    assert PHONE not in page.text and NAME not in page.text


def test_retention_rules_editable_and_run_from_admin(ctx, demo, client):
    """L1: an admin edits a period (audited), runs a dry run and a real run; runs are listed."""
    token = as_role(ctx, client, "admin")
    page = client.get("/admin/privacy/retention", headers=EN)
    assert page.status_code == 200 and "90" in page.text
    r = client.post("/admin/privacy/retention/rules", data={"messages": "60", "csrf_token": token})
    assert r.status_code == 200
    bad = client.post("/admin/privacy/retention/rules", data={"audit_log": "3", "csrf_token": token})
    assert bad.status_code == 422
    with ctx.db.read() as s:
        rules = {r.category: r.hours for r in s.scalars(select(RetentionRule))}
    assert rules == {"messages": 60 * 24}
    client.post("/admin/privacy/retention/run", data={"dry_run": "1", "csrf_token": token})
    client.post("/admin/privacy/retention/run", data={"csrf_token": token})
    page = client.get("/admin/privacy/retention", headers=EN)
    assert page.text.count("<td>yes</td>") == 1 and page.text.count("<td>no</td>") == 1


def test_import_upload_reports_per_row_and_wrong_encoding_imports_nothing(ctx, demo, client):
    """C7: the admin upload shows a reason per row; a non-UTF-8 file is refused whole."""
    from tests.helpers import sim_account

    token = as_role(ctx, client, "admin")
    acc = sim_account(ctx).id
    csv = "address,topics,consent_text_version,consent_time,source\n"
    csv += "+4915100000001,angebote,1,2025-01-01T00:00:00Z,x\nbad,,,,\n"
    r = client.post(
        "/admin/privacy/import",
        data={"account_id": str(acc), "csrf_token": token},
        files={"file": ("c.csv", csv.encode(), "text/csv")},
        headers=EN,
    )
    assert r.status_code == 200 and "not a valid phone number" in r.text
    r = client.post(  # the same report in German: the reasons too, not only the page around them
        "/admin/privacy/import",
        data={"account_id": str(acc), "csrf_token": token},
        files={
            "file": ("c.csv", (csv + "+4915100000003,nope,1,2025-01-01T00:00:00,x\n").encode(), "text/csv")
        },
        headers={"accept-language": "de"},
    )
    assert r.status_code == 200
    assert "keine gültige Telefonnummer" in r.text and "unbekanntes Thema: nope" in r.text
    assert "not a valid phone number" not in r.text
    r = client.post(
        "/admin/privacy/import",
        data={"account_id": str(acc), "csrf_token": token},
        files={"file": ("c.csv", "address\n+4915100000002\nJürgen\n".encode("latin-1"), "text/csv")},
        headers=EN,
    )
    assert r.status_code == 422 and "UTF-8" in r.text
    with ctx.db.read() as s:
        assert len(s.scalars(select(Contact)).all()) == 1


def test_documents_page_and_downloads(ctx, demo, client):
    """T1, T2: the notice and the Art. 30 record, in Markdown and HTML."""
    as_role(ctx, client, "dpo")
    assert "Art. 30" in client.get("/admin/privacy/documents", headers=EN).text
    md = client.get("/admin/privacy/documents/art30-en.md")
    assert md.status_code == 200 and md.text.startswith("# Record of processing")
    html = client.get("/admin/privacy/documents/notice-de.html")
    assert html.status_code == 200 and "<h2>Messenger-Kommunikation</h2>" in html.text
    assert client.get("/admin/privacy/documents/secrets-de.md").status_code == 404


def test_dashboard_warns_about_overdue_requests(ctx, demo, client):
    """D5: the admin's first page shows overdue requests to those who handle them."""
    as_role(ctx, client, "dpo")
    assert "overdue" not in client.get("/admin", headers=EN).text
    with ctx.db.write() as s:
        privacy.log_request(s, demo.tenant_id, "access", "email", received_at=utcnow() - timedelta(days=40))
    assert "1 requests are overdue" in client.get("/admin", headers=EN).text
