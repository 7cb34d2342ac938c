"""Admin contact pages: consent state, ledger, audit, proof, service reply, refusals (C3, C4, C5, S4)."""

from __future__ import annotations

import base64
import re

from sqlalchemy import select, update

from konsent.flows.demo import CONSENT_TEXT
from konsent.flows.inbound import simulator
from konsent.flows.organisation import staff, tenants
from konsent.store.tables import AuditEntry, Contact, LedgerEntry, Message, OutboxRow
from tests.conftest import drain
from tests.helpers import agents_see_unrouted, phone_texts, request_code, sim_account, subscribe
from tests.web.test_admin_auth import PASSWORD, as_role, login

PHONE = "+4915112345678"


def only_contact(ctx) -> int:  # type: ignore[no-untyped-def]
    with ctx.db.read() as s:
        return s.scalars(select(Contact.id)).one()


def subscribed(ctx) -> int:  # type: ignore[no-untyped-def]
    subscribe(ctx, PHONE, ["angebote"], locale="de")
    drain(ctx)
    return only_contact(ctx)


def test_contact_page_shows_consent_state_and_full_ledger(ctx, demo, client):
    """Issue 2 step 4: state per topic and every evidence field of the ledger entry (C3)."""
    cid = subscribed(ctx)
    as_role(ctx, client, "owner")
    with ctx.db.read() as s:
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.contact_id == cid)).one()
    r = client.get(f"/admin/contacts/{cid}", headers={"accept-language": "en"})
    assert r.status_code == 200
    html = r.text
    assert "newsletter:angebote" in html and ">active<" in html
    assert ">none<" in html  # produktnews: never subscribed
    for field in ("consent_text_hash", "privacy_url", "privacy_version", "source_url", "ip_hash"):
        assert str(entry.payload[field]) in html, field
    assert "http://shop.example/demo" in html and "simulator" in html
    assert PHONE in html  # personal data for an owner
    assert ">granted<" in html
    # the contact list shows states but no number
    listing = client.get("/admin/contacts", headers={"accept-language": "en"}).text
    assert f"/admin/contacts/{cid}" in listing and PHONE not in listing


def test_viewing_a_contact_page_writes_an_audit_entry(ctx, demo, client):
    """S4 / invariant 3: every staff view of personal data is in the hash-chained audit log."""
    cid = subscribed(ctx)
    as_role(
        ctx, client, "dpo"
    )  # (an agent sees only contacts of their teams: tests/inbox/test_role_matrix.py)
    client.get(f"/admin/contacts/{cid}")
    with ctx.db.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.view")).all()
    assert [(r.subject, r.actor.startswith("user:")) for r in rows] == [(f"contact:{cid}", True)]


def test_viewer_sees_consent_state_but_no_personal_data(ctx, demo, client):
    """S3: a viewer reads consent states; names, numbers and messages stay hidden, nothing to audit."""
    cid = subscribed(ctx)
    as_role(ctx, client, "viewer")
    r = client.get(f"/admin/contacts/{cid}", headers={"accept-language": "en"})
    assert r.status_code == 200 and "newsletter:angebote" in r.text
    assert PHONE not in r.text and 'action="/admin/contacts/' not in r.text
    assert client.get(f"/admin/contacts/{cid}/proof.json").status_code == 403
    with ctx.db.read() as s:
        assert not s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.view")).all()


def test_proof_downloads_hold_ledger_evidence_and_the_consent_text_verbatim(ctx, demo, client):
    """C3: JSON with the ledger entry and its text hash; HTML with the consent text word for word."""
    cid = subscribed(ctx)
    as_role(ctx, client, "owner")
    r = client.get(f"/admin/contacts/{cid}/proof.json")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    doc = r.json()
    [entry] = doc["ledger"]
    h = entry["payload"]["consent_text_hash"]
    assert entry["action"] == "granted" and doc["consent_texts"][h]["text"] == CONSENT_TEXT["de"]
    assert doc["chain_verification"]["ok"] is True
    html = client.get(f"/admin/contacts/{cid}/proof.html", headers={"accept-language": "de"}).text
    assert CONSENT_TEXT["de"] in html and h in html and "Einwilligungsnachweis" in html
    with ctx.db.read() as s:
        exports = s.scalars(select(AuditEntry).where(AuditEntry.action == "consent.proof.export")).all()
    assert len(exports) == 2


def test_service_reply_from_contact_page_reaches_the_phone(ctx, demo, client):
    """Issue 2 step 6: staff answer someone who wrote first; the simulator phone receives it."""
    acc = sim_account(ctx)
    simulator.phone_send(ctx, acc.id, PHONE, "Hallo, wo ist meine Bestellung?")
    drain(ctx)
    cid = only_contact(ctx)
    token = as_role(ctx, client, "agent")
    agents_see_unrouted(ctx)
    page = client.get(f"/admin/contacts/{cid}")
    assert "Hallo, wo ist meine Bestellung?" in page.text
    r = client.post(
        f"/admin/contacts/{cid}/reply",
        data={"text": "Ihre Bestellung ist unterwegs.", "purpose": "service", "csrf_token": token},
    )
    assert r.status_code == 200 and r.url.path == f"/admin/contacts/{cid}"
    with ctx.db.read() as s:
        mine = s.scalars(select(Message).where(Message.author.like("user:%"))).all()
        assert [(m.purpose, m.status) for m in mine] == [("service", "queued")]
    drain(ctx)
    assert "Ihre Bestellung ist unterwegs." in phone_texts(ctx, PHONE)
    page = client.get(f"/admin/contacts/{cid}", headers={"accept-language": "en"})
    assert "Ihre Bestellung ist unterwegs." in page.text and "tick sent" in page.text


def test_reply_without_csrf_token_queues_nothing(ctx, demo, client):
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "Hallo")
    drain(ctx)
    cid = only_contact(ctx)
    as_role(ctx, client, "owner")
    r = client.post(f"/admin/contacts/{cid}/reply", data={"text": "Hi", "purpose": "service"})
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.author.like("user:%"))).all() == []


def test_newsletter_send_without_consent_shows_the_refusal_reason(ctx, demo, client):
    """C5: a newsletter to someone who only wrote to us is refused with a reason, nothing queued."""
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "Hallo, wo ist meine Bestellung?")
    drain(ctx)
    cid = only_contact(ctx)
    token = as_role(ctx, client, "owner")
    r = client.post(
        f"/admin/contacts/{cid}/reply",
        data={"text": "Neue Angebote!", "purpose": "newsletter:angebote", "csrf_token": token},
        headers={"accept-language": "de"},
    )
    assert r.status_code == 409
    assert "Keine Rechtsgrundlage" in r.text or "keine Rechtsgrundlage" in r.text
    assert "für dieses Thema liegt keine Einwilligung vor" in r.text
    assert "Neue Angebote!" in r.text  # the draft is kept
    with ctx.db.read() as s:
        assert s.scalars(select(OutboxRow).where(OutboxRow.purpose != "service")).all() == []


def test_service_reply_to_contact_without_conversation_is_refused(ctx, demo, client):
    """C5: `service` only answers a conversation the contact started."""
    cid = subscribed(ctx)
    with ctx.db.write() as s:
        s.execute(update(Contact).where(Contact.id == cid).values(has_contacted_us=False))
    token = as_role(ctx, client, "owner")
    r = client.post(
        f"/admin/contacts/{cid}/reply",
        data={"text": "Hallo", "purpose": "service", "csrf_token": token},
        headers={"accept-language": "en"},
    )
    assert r.status_code == 409
    assert "service messages only answer a conversation the contact started" in r.text


def test_staff_withdrawal_is_recorded_and_shown(ctx, demo, client):
    """C4: staff record a withdrawal made by phone or letter; it lands in the ledger."""
    cid = subscribed(ctx)
    token = as_role(ctx, client, "agent")
    agents_see_unrouted(ctx)
    r = client.post(
        f"/admin/contacts/{cid}/withdraw",
        data={"purpose": "newsletter:angebote", "csrf_token": token},
        headers={"accept-language": "en"},
    )
    assert r.status_code == 200 and "recorded in the ledger" in r.text
    assert ">withdrawn<" in r.text
    with ctx.db.read() as s:
        actions = s.scalars(select(LedgerEntry.action).order_by(LedgerEntry.seq)).all()
    assert actions == ["granted", "withdrawn"]


def test_other_tenants_contact_is_not_found(ctx, demo, client):
    """Invariant 4: tenant B's contact id with tenant A's session → 404 on every contact route."""
    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        acc = tenants.create_channel_account(
            ctx,
            s,
            other,
            "simulator",
            "Sim",
            secrets_={"webhook_secret": base64.b64encode(b"x" * 20).decode()},
        )
        staff.create_user(s, other, "b@other.example", PASSWORD, "owner")
    simulator.phone_send(ctx, acc.id, PHONE, "Hallo")
    theirs = only_contact(ctx)
    token = as_role(ctx, client, "owner")
    for path in ("", "/proof.json", "/proof.html"):
        assert client.get(f"/admin/contacts/{theirs}{path}").status_code == 404, path
    for path, data in (("/reply", {"text": "x", "purpose": "service"}), ("/withdraw", {"purpose": ""})):
        assert (
            client.post(f"/admin/contacts/{theirs}{path}", data={**data, "csrf_token": token}).status_code
            == 404
        )
    assert client.get("/admin/contacts/abc").status_code == 404
    # and tenant B's own staff see it
    fresh = type(client)(client.app)
    r = login(fresh, "b@other.example", PASSWORD, tenant="other")
    assert fresh.get(f"/admin/contacts/{theirs}").status_code == 200
    assert r.url.path == "/admin"


def test_api_proof_html_uses_the_same_readable_document(ctx, demo, client):
    """C3: /api/v1/contacts/{id}/proof.html renders the printable proof with the text verbatim."""
    cid = subscribed(ctx)
    with ctx.db.write() as s:
        token = staff.create_api_token(s, tenants.tenant_by_slug(s, "demo"), "proof test", role="dpo")
    r = client.get(
        f"/api/v1/contacts/{cid}/proof.html",
        headers={"authorization": f"Bearer {token}", "accept-language": "en"},
    )
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert CONSENT_TEXT["de"] in r.text and "Consent proof" in r.text and "How to verify" in r.text


def test_dpo_reads_and_exports_but_cannot_send_or_withdraw(ctx, demo, client):
    """S3: the data-protection officer sees personal data and proofs, but sends nothing."""
    cid = subscribed(ctx)
    token = as_role(ctx, client, "dpo")
    page = client.get(f"/admin/contacts/{cid}")
    assert PHONE in page.text and "/reply" not in page.text
    assert client.get(f"/admin/contacts/{cid}/proof.json").status_code == 200
    r = client.post(
        f"/admin/contacts/{cid}/reply", data={"text": "x", "purpose": "service", "csrf_token": token}
    )
    assert r.status_code == 403
    r = client.post(f"/admin/contacts/{cid}/withdraw", data={"purpose": "", "csrf_token": token})
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.scalars(select(LedgerEntry.action)).all() == ["granted"]


def test_withdraw_all_cancels_every_newsletter_consent(ctx, demo, client):
    """C4: one staff action withdraws every topic; each lands in the ledger."""
    subscribe(ctx, PHONE, ["angebote", "produktnews"])
    drain(ctx)
    cid = only_contact(ctx)
    token = as_role(ctx, client, "owner")
    assert (
        "Withdraw all newsletter consents"
        in client.get(f"/admin/contacts/{cid}", headers={"accept-language": "en"}).text
    )
    client.post(f"/admin/contacts/{cid}/withdraw", data={"purpose": "", "csrf_token": token})
    with ctx.db.read() as s:
        actions = s.scalars(select(LedgerEntry.action).order_by(LedgerEntry.seq)).all()
    assert actions == ["granted", "granted", "withdrawn", "withdrawn"]


def test_dashboard_counts_contacts_subscriptions_pending_opt_ins_and_queue(ctx, demo, client):
    """The first page: how many contacts, active subscriptions per topic, open opt-ins, queued messages."""
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    request_code(ctx, ["produktnews"])  # a visitor who has not sent the code yet
    cid = only_contact(ctx)
    token = as_role(ctx, client, "owner")
    client.post(
        f"/admin/contacts/{cid}/reply", data={"text": "Danke!", "purpose": "service", "csrf_token": token}
    )
    html = client.get("/admin", headers={"accept-language": "en"}).text
    numbers = re.findall(r'<span class="num">(\d+)</span><span>([^<]+)</span>', html)
    assert numbers == [("1", "Contacts"), ("1", "Pending opt-ins"), ("1", "Queued messages")]
    rows = re.findall(r"<code>newsletter:(\w+)</code></td><td class=\"num\">(\d+)</td>", html)
    assert rows == [("angebote", "1"), ("produktnews", "0")]
