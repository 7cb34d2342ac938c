"""Issue 2, step by step, as a user would try it: demo seed, opt-in, confirmation by code, proof,
STOP, service conversations, and the send-time check (U1, C1-C5, CH1; invariants 1-3)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.channels.base import OutboundContent
from konsent.delivery.worker import Worker
from konsent.domain.errors import InvalidInput, NoLegalBasis
from konsent.domain.ledger import text_hash
from konsent.flows import message_desk, texts
from konsent.flows.consent import optin
from konsent.flows.demo import CONSENT_TEXT, DEMO_EMAIL, seed_demo
from konsent.flows.inbound import simulator
from konsent.flows.organisation import staff, tenants
from konsent.flows.outbound import messaging
from konsent.flows.privacy import proof
from konsent.i18n import t
from konsent.store.tables import (
    Consent,
    Contact,
    Conversation,
    LedgerEntry,
    Message,
    OptInRequest,
    OutboxRow,
    SimulatorMail,
    StaffUser,
)
from konsent.store.types import utcnow
from konsent.web.errors import status_of
from tests.conftest import drain
from tests.flows.support import consent_states, contact_of, count, enqueue, message_status, outbox_state
from tests.helpers import phone_texts, request_code, sim_account, subscribe

PHONE = "+4915112345678"
IP = "203.0.113.77"


# --- step 1: the demo installation -------------------------------------------------------------


def test_step1_demo_seed_creates_tenant_topics_simulator_and_owner_with_one_time_password(ctx):
    """U1: "Demo GmbH", two topics, the simulator channel, an owner who must change the password."""
    seed = seed_demo(ctx)
    assert seed.created and seed.admin_password
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        assert tenant.name == "Demo GmbH"
        assert [tp.slug for tp in tenants.topics(s, tenant.id)] == ["angebote", "produktnews"]
        assert [a.kind for a in tenants.channel_accounts(s, tenant.id)] == ["simulator"]
        for locale in ("de", "en"):
            assert tenants.current_consent_text(s, tenant, locale).text == CONSENT_TEXT[locale]
        user = s.scalars(select(StaffUser).where(StaffUser.tenant_id == tenant.id)).one()
        assert (user.email, user.role, user.must_change_password) == (DEMO_EMAIL, "owner", True)
        assert seed.admin_password not in user.password_hash
        assert staff.authenticate(s, tenant, DEMO_EMAIL, seed.admin_password) is not None


def test_step1_demo_seed_is_idempotent_and_shows_no_password_again(ctx):
    first = seed_demo(ctx)
    again = seed_demo(ctx)
    assert not again.created and again.admin_password is None and again.tenant_id == first.tenant_id
    assert count(ctx, StaffUser) == 1


# --- step 2: the widget asks for an opt-in; nothing is sent -------------------------------------


def test_step2_opt_in_request_is_stored_pending_and_sends_nothing(ctx, demo):
    """C2: submitting the widget creates a pending opt-in; konsent sends nothing."""
    pending = request_code(ctx, ["angebote", "produktnews"])
    assert pending.code.startswith("KS") and pending.code in pending.prefill
    assert pending.expires_at - utcnow() > timedelta(hours=47)
    assert "/simulator?" in pending.deep_link
    with ctx.db.read() as s:
        req = s.scalars(select(OptInRequest)).one()
        assert req.topics == ["angebote", "produktnews"] and req.confirmed_at is None
        assert req.code_hash != pending.code  # the code is a bearer secret: only its hash is stored
    drain(ctx)
    for model in (OutboxRow, Message, SimulatorMail, Contact, Consent, LedgerEntry):
        assert count(ctx, model) == 0, model.__name__


@pytest.mark.parametrize(
    ("slugs", "fragment"),
    [([], "mindestens ein Thema"), (["angebote", "wetter"], "Unbekanntes Thema: wetter")],
)
def test_step2_opt_in_without_or_with_unknown_topic_is_refused_and_stores_nothing(ctx, demo, slugs, fragment):
    with pytest.raises(InvalidInput) as err:
        request_code(ctx, slugs, locale="de")
    assert fragment in str(err.value)
    assert count(ctx, OptInRequest) == 0


# --- step 3: the code from the simulator phone confirms -----------------------------------------


def test_step3_code_confirms_topics_and_reply_names_them_and_how_to_withdraw(ctx, demo):
    """C2: the confirmation names the topics and says how to withdraw, in the contact's language."""
    subscribe(ctx, PHONE, ["angebote", "produktnews"], locale="de")
    c = contact_of(ctx, PHONE)
    assert consent_states(ctx, c.id) == {"newsletter:angebote": "active", "newsletter:produktnews": "active"}
    drain(ctx)
    [reply] = phone_texts(ctx, PHONE)
    assert reply == t("de", texts.CONFIRMED, topics="Angebote, Produktneuheiten")
    assert reply.startswith("Vielen Dank") and "STOP" in reply


def test_step3_unconfirmed_opt_in_expires_after_48_hours_and_is_deleted(ctx, demo):
    """C2: after 48 h the code no longer confirms; the periodic job deletes the request."""
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        old = optin.request_opt_in(
            ctx,
            s,
            tenant,
            channel_account_id=sim_account(ctx).id,
            topic_slugs=["angebote"],
            locale="de",
            at=utcnow() - timedelta(hours=48, minutes=1),
        )
    recent = request_code(ctx, ["produktnews"])
    assert count(ctx, OptInRequest) == 2
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, old.prefill, locale="de")
    drain(ctx)
    assert phone_texts(ctx, PHONE) == [t("de", texts.CODE_EXPIRED)]
    assert consent_states(ctx, contact_of(ctx, PHONE).id) == {}
    worker = Worker(ctx)
    try:
        worker.periodic(force=True)
    finally:
        worker.close()  # on PostgreSQL it holds the scheduler lock
    with ctx.db.read() as s:
        left = s.scalars(select(OptInRequest)).all()
        assert [r.topics for r in left] == [["produktnews"]]
    assert recent.expires_at > utcnow()


def test_step3_opt_in_just_before_expiry_still_confirms(ctx, demo):
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        pending = optin.request_opt_in(
            ctx,
            s,
            tenant,
            channel_account_id=sim_account(ctx).id,
            topic_slugs=["angebote"],
            locale="de",
            at=utcnow() - timedelta(hours=47, minutes=55),
        )
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, pending.prefill, locale="de")
    assert consent_states(ctx, contact_of(ctx, PHONE).id) == {"newsletter:angebote": "active"}


def test_step3_expire_opt_ins_keeps_requests_within_their_ttl(ctx, demo):
    request_code(ctx, ["angebote"])
    with ctx.db.write() as s:
        assert optin.expire_opt_ins(s, utcnow() + timedelta(hours=47)) == 0
    with ctx.db.write() as s:
        assert optin.expire_opt_ins(s, utcnow() + timedelta(hours=49)) == 1


def test_step3_wrong_code_gets_polite_german_answer_and_confirms_nothing(ctx, demo):
    """Bad input: an unknown code → a translated answer, nothing confirmed."""
    request_code(ctx, ["angebote"])
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "Code: KS0000000000", locale="de")
    drain(ctx)
    assert phone_texts(ctx, PHONE) == [t("de", texts.CODE_UNKNOWN)]
    assert phone_texts(ctx, PHONE)[0].startswith("Diesen Code kennen wir leider nicht")
    assert consent_states(ctx, contact_of(ctx, PHONE).id) == {}
    assert count(ctx, LedgerEntry) == 0


def test_step3_reused_code_is_answered_and_changes_nothing(ctx, demo):
    pending = request_code(ctx, ["angebote"])
    acc = sim_account(ctx).id
    simulator.phone_send(ctx, acc, PHONE, pending.prefill, locale="de")
    other = "+4915199999999"
    simulator.phone_send(ctx, acc, PHONE, pending.prefill, locale="de")
    simulator.phone_send(ctx, acc, other, pending.prefill, locale="de")
    drain(ctx)
    assert phone_texts(ctx, PHONE)[1:] == [t("de", texts.CODE_USED)]
    assert phone_texts(ctx, other) == [t("de", texts.CODE_USED)]
    assert consent_states(ctx, contact_of(ctx, other).id) == {}
    assert count(ctx, LedgerEntry) == 1


def test_step3_english_contact_gets_english_confirmation(ctx, demo):
    subscribe(ctx, PHONE, ["produktnews"], locale="en")
    drain(ctx)
    assert phone_texts(ctx, PHONE) == [t("en", texts.CONFIRMED, topics="Product news")]


# --- step 4: the ledger and the proof ----------------------------------------------------------


def test_step4_ledger_entry_carries_the_evidence_and_only_a_hashed_ip(ctx, demo):
    """C3: text hash and version, privacy URL and version, source, channel, times, keyed-hashed IP."""
    subscribe(ctx, PHONE, ["angebote"], locale="de")
    c = contact_of(ctx, PHONE)
    with ctx.db.read() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        [entry] = s.scalars(select(LedgerEntry)).all()
        req = s.scalars(select(OptInRequest)).one()
    p = entry.payload
    assert (entry.contact_id, entry.purpose, entry.action) == (c.id, "newsletter:angebote", "granted")
    assert p["consent_text_hash"] == text_hash(CONSENT_TEXT["de"])
    assert p["consent_text_version"] == 1 and p["consent_text_locale"] == "de"
    assert p["privacy_url"] == tenant.privacy_url and p["privacy_version"] == "2026-11"
    assert p["source_url"] == "http://shop.example/demo"
    assert p["channel"] == "simulator" and p["method"] == "double_opt_in"
    assert p["requested_at"] <= p["confirmed_at"]
    assert p["requested_at"] == req.requested_at.isoformat()
    assert len(p["ip_hash"]) >= 32 and p["ip_hash"] == req.ip_hash
    stored = json.dumps(p) + json.dumps([req.ip_hash, req.ua_hash])
    assert IP not in stored and "203.0.113.0" not in stored and "203.0.113" not in stored


def test_step4_proof_document_shows_state_ledger_texts_and_verification(ctx, demo):
    """C3: "Download proof" holds everything an authority needs to check the consent."""
    subscribe(ctx, PHONE, ["angebote", "produktnews"], locale="de")
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "STOP Angebote")
    c = contact_of(ctx, PHONE)
    with ctx.db.write() as s:
        doc = message_desk.contact_proof(s, c.tenant_id, "user:1", c.id)
    assert doc["controller"]["name"] == "Demo GmbH"
    assert {(r["purpose"], r["status"]) for r in doc["current_state"]} == {
        ("newsletter:angebote", "withdrawn"),
        ("newsletter:produktnews", "active"),
    }
    assert [(e["purpose"], e["action"]) for e in doc["ledger"]] == [
        ("newsletter:angebote", "granted"),
        ("newsletter:produktnews", "granted"),
        ("newsletter:angebote", "withdrawn"),
    ]
    h = text_hash(CONSENT_TEXT["de"])
    assert doc["consent_texts"][h]["text"] == CONSENT_TEXT["de"]
    assert doc["chain_verification"]["ok"] and doc["chain_verification"]["checked_entries"] == 3
    json.dumps(doc)  # JSON-ready
    assert PHONE not in json.dumps(doc)


def test_step4_verify_ledger_checks_the_chain(ctx, demo):
    subscribe(ctx, PHONE, ["angebote"])
    subscribe(ctx, "+4915100000001", ["produktnews"])
    with ctx.db.read() as s:
        r = proof.verify_ledger(s, demo.tenant_id)
    assert r.ok and r.checked == 2


# --- step 5: STOP --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "Stop",
        "stopp",
        "ABMELDEN",
        "abbestellen",
        "UNSUBSCRIBE",
        "  stop!!! ",
        "🛑 STOP 🛑",
        "Stopp. 🙏",
    ],
)
def test_step5_stop_variants_withdraw_every_topic_with_one_confirmation(ctx, demo, text):
    """C4: the keyword with spaces, punctuation or emoji withdraws; one confirmation is sent."""
    subscribe(ctx, PHONE, ["angebote", "produktnews"], locale="de")
    drain(ctx)
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, text, locale="de")
    c = contact_of(ctx, PHONE)
    assert consent_states(ctx, c.id) == {
        "newsletter:angebote": "withdrawn",
        "newsletter:produktnews": "withdrawn",
    }
    drain(ctx)
    msgs = phone_texts(ctx, PHONE)
    assert msgs[1:] == [t("de", texts.WITHDRAWN, topics="Angebote, Produktneuheiten")]
    with ctx.db.read() as s:
        actions = [(e.purpose, e.action) for e in s.scalars(select(LedgerEntry).order_by(LedgerEntry.seq))]
    assert actions[2:] == [("newsletter:angebote", "withdrawn"), ("newsletter:produktnews", "withdrawn")]


def test_step5_stop_topic_cancels_that_topics_queue_but_not_other_topic_or_service(ctx, demo):
    """C4, invariant 2: "STOP Angebote" withdraws one topic and cancels only its queued messages."""
    subscribe(ctx, PHONE, ["angebote", "produktnews"], locale="de")
    drain(ctx)
    c = contact_of(ctx, PHONE)
    offer = enqueue(ctx, c.id, "newsletter:angebote", "20 % auf alles")
    news = enqueue(ctx, c.id, "newsletter:produktnews", "Neu: der Rucksack")
    service = enqueue(ctx, c.id, "service", "Ihre Bestellung ist unterwegs")
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "STOP Angebote", locale="de")
    assert consent_states(ctx, c.id) == {
        "newsletter:angebote": "withdrawn",
        "newsletter:produktnews": "active",
    }
    assert outbox_state(ctx, offer) == "cancelled"
    assert message_status(ctx, offer) == ("cancelled", "withdrawn")
    assert outbox_state(ctx, news) == "available" and outbox_state(ctx, service) == "available"
    drain(ctx)
    received = phone_texts(ctx, PHONE)[1:]
    assert "20 % auf alles" not in received
    assert sorted(received) == sorted(
        ["Neu: der Rucksack", "Ihre Bestellung ist unterwegs", t("de", texts.WITHDRAWN, topics="Angebote")]
    )


def test_step5_stop_without_subscription_answers_once_and_records_nothing(ctx, demo):
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "STOP", locale="de")
    drain(ctx)
    assert phone_texts(ctx, PHONE) == [t("de", texts.NOTHING_TO_WITHDRAW)]
    assert count(ctx, LedgerEntry) == 0


def test_step5_sentence_with_stop_is_a_conversation_not_a_withdrawal(ctx, demo):
    subscribe(ctx, PHONE, ["angebote"], locale="de")
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "Stop, wo ist meine Bestellung?", locale="de")
    assert consent_states(ctx, contact_of(ctx, PHONE).id) == {"newsletter:angebote": "active"}


# --- step 6: someone writes first ----------------------------------------------------------------


def test_step6_stranger_opens_a_service_conversation_staff_answer_newsletter_refused(ctx, demo):
    """Issue 2 step 6: writing first opens a conversation; it is no consent to newsletters (C5)."""
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "Hallo, wo ist meine Bestellung?", name="Erika")
    c = contact_of(ctx, PHONE)
    assert c.has_contacted_us and consent_states(ctx, c.id) == {}
    with ctx.db.read() as s:
        conv = s.scalars(select(Conversation).where(Conversation.contact_id == c.id)).one()
        assert conv.state == "open"
        automatic = s.scalars(select(Message.purpose).where(Message.direction == "out")).all()
        assert set(automatic) <= {"service"}  # a bot may greet; nothing else goes out
    assert count(ctx, LedgerEntry) == 0
    queued = count(ctx, OutboxRow)
    with ctx.db.write() as s:
        reply = message_desk.send_message(
            ctx, s, c.tenant_id, "user:1", c.id, "service", "Sie ist unterwegs."
        )
        assert reply.conversation_id == conv.id
    with ctx.db.write() as s, pytest.raises(NoLegalBasis) as refused:
        message_desk.send_message(ctx, s, c.tenant_id, "user:1", c.id, "newsletter:angebote", "20 % Rabatt")
    assert status_of(refused.value) == 409
    assert refused.value.as_dict()["reason_code"] == "no_consent"
    assert "no consent" in str(refused.value)
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1] == "Sie ist unterwegs."
    assert "20 % Rabatt" not in phone_texts(ctx, PHONE)
    assert count(ctx, OutboxRow) == queued + 1


def test_step6_service_message_to_someone_who_never_wrote_is_refused(ctx, demo):
    subscribe(ctx, PHONE, ["angebote"])  # sending the code counts as writing first
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        stranger = Contact(tenant_id=tenant.id)
        s.add(stranger)
        s.flush()
        ctx.keys.new_contact_key(s, stranger)  # as every contact gets one; without a key it counts as erased
        sid = stranger.id
    with pytest.raises(NoLegalBasis) as refused:
        enqueue(ctx, sid, "service", "Hallo")
    assert refused.value.as_dict()["reason_code"] == "no_conversation"


# --- step 7: the REST API and the send-time re-check --------------------------------------------


def test_step7_api_send_with_consent_is_accepted_and_delivered(ctx, demo, client):
    """C5: POST /api/v1/messages with newsletter:<topic> → 202 when consent is valid."""
    from tests.flows.support import api_token, auth

    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    c = contact_of(ctx, PHONE)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": c.id, "purpose": "newsletter:angebote", "text": "Nur heute: 20 %"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["purpose"] == "newsletter:angebote"
    drain(ctx)
    assert phone_texts(ctx, PHONE)[-1] == "Nur heute: 20 %"
    assert message_status(ctx, r.json()["id"])[0] == "sent"


def test_step7_api_send_without_consent_is_409_with_reason_and_queues_nothing(ctx, demo, client):
    from tests.flows.support import api_token, auth

    subscribe(ctx, PHONE, ["angebote"])
    c = contact_of(ctx, PHONE)
    before = count(ctx, OutboxRow)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": c.id, "purpose": "newsletter:produktnews", "text": "Neu!"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "no_legal_basis" and body["reason_code"] == "no_consent"
    assert body["purpose"] == "newsletter:produktnews" and "no consent" in body["message"]
    assert count(ctx, OutboxRow) == before


def test_step7_worker_rechecks_at_claim_and_refuses_after_consent_lapsed(ctx, demo, client):
    """Invariant 1: a row queued with consent is refused at claim if the consent is gone by then."""
    from tests.flows.support import api_token, auth

    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    c = contact_of(ctx, PHONE)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": c.id, "purpose": "newsletter:angebote", "text": "Nur heute: 20 %"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 202
    mid = r.json()["id"]
    # A withdrawal that raced the enqueue: the consent row changed, the queued row did not.
    with ctx.db.write() as s:
        row = s.scalars(select(Consent).where(Consent.contact_id == c.id)).one()
        row.status = "withdrawn"
        row.changed_at = utcnow()
    mails = count(ctx, SimulatorMail)
    drain(ctx)
    assert outbox_state(ctx, mid) == "refused"
    status, reason = message_status(ctx, mid)
    assert status == "refused" and reason.startswith("withdrawn")
    assert count(ctx, SimulatorMail) == mails
    got = client.get(f"/api/v1/messages/{mid}", headers=auth(api_token(ctx, "viewer")))
    assert got.json()["status"] == "refused"


def test_step7_withdrawal_after_enqueue_cancels_and_nothing_is_delivered(ctx, demo, client):
    from tests.flows.support import api_token, auth

    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    c = contact_of(ctx, PHONE)
    token = api_token(ctx)
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": c.id, "purpose": "newsletter:angebote", "text": "Nur heute: 20 %"},
        headers=auth(token),
    )
    w = client.post(f"/api/v1/contacts/{c.id}/withdraw", json={}, headers=auth(token))
    assert w.status_code == 200 and w.json() == {"withdrawn": ["newsletter:angebote"]}
    mails = count(ctx, SimulatorMail)
    drain(ctx)
    assert outbox_state(ctx, r.json()["id"]) == "cancelled"
    assert count(ctx, SimulatorMail) == mails


def test_step7_erased_contact_is_refused_at_claim(ctx, demo):
    subscribe(ctx, PHONE, ["angebote"])
    drain(ctx)
    c = contact_of(ctx, PHONE)
    mid = enqueue(ctx, c.id, "newsletter:angebote", "Hallo")
    with ctx.db.write() as s:
        s.get(Contact, c.id).erased_at = utcnow()  # type: ignore[union-attr]
    drain(ctx)
    assert outbox_state(ctx, mid) == "refused"
    assert message_status(ctx, mid)[1].startswith("erased")


def test_step3_provider_clock_ahead_does_not_date_the_consent_into_the_future(ctx, demo, client):
    """A code whose provider timestamp is ahead of our clock still gives a consent usable right away."""
    import time

    from konsent.flows.inbound.receive import receive_webhook
    from tests.flows.support import api_token, auth, signed_request

    pending = request_code(ctx, ["angebote"])
    acc = sim_account(ctx)
    payload = {
        "messages": [
            {"id": "simin.skew", "from": PHONE, "text": pending.prefill, "timestamp": time.time() + 600}
        ]
    }
    assert receive_webhook(ctx, acc.route_key, signed_request(ctx, acc, payload)).status == 200
    c = contact_of(ctx, PHONE)
    with ctx.db.read() as s:
        [entry] = s.scalars(select(LedgerEntry)).all()
    assert entry.payload["confirmed_at"] <= utcnow().isoformat()
    r = client.post(
        "/api/v1/messages",
        json={"contact_id": c.id, "purpose": "newsletter:angebote", "text": "Willkommen"},
        headers=auth(api_token(ctx)),
    )
    assert r.status_code == 202, r.text


def test_step4_proof_html_is_a_readable_document_in_the_readers_language(ctx, demo, client):
    """C3: "Download proof" as HTML: controller, state, the consent text verbatim, its hash, verification."""
    from tests.flows.support import api_token, auth

    subscribe(ctx, PHONE, ["angebote"], locale="de")
    c = contact_of(ctx, PHONE)
    r = client.get(
        f"/api/v1/contacts/{c.id}/proof.html",
        headers={**auth(api_token(ctx, "dpo")), "accept-language": "de"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "Demo GmbH" in html and text_hash(CONSENT_TEXT["de"]) in html
    assert "Ja, ich möchte von der Demo GmbH Nachrichten" in html
    assert "erteilt" in html and "action:" not in html and "state:" not in html
    assert PHONE not in html and IP not in html


def test_step4_ledger_records_the_text_version_shown_not_a_later_one(ctx, demo):
    """C3, C6: a new consent text published between sign-up and confirmation does not rewrite the proof."""
    pending = request_code(ctx, ["angebote"], locale="de")
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        tenants.set_consent_text(s, tenant, "de", CONSENT_TEXT["de"] + " Neu: auch per SMS.")
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, pending.prefill, locale="de")
    with ctx.db.read() as s:
        [entry] = s.scalars(select(LedgerEntry)).all()
        consent = s.scalars(select(Consent)).one()
    assert entry.payload["consent_text_version"] == 1
    assert entry.payload["consent_text_hash"] == text_hash(CONSENT_TEXT["de"])
    assert consent.text_version == 1
    c = contact_of(ctx, PHONE)
    with ctx.db.write() as s, pytest.raises(NoLegalBasis) as refused:
        contact = s.get(Contact, c.id)
        assert contact is not None
        messaging.enqueue_message(
            ctx, s, contact, "newsletter:angebote", OutboundContent(text="x"), min_text_version=2
        )
    assert refused.value.as_dict()["reason_code"] == "outdated_text"


def test_step5_stop_also_cancels_a_newsletter_waiting_for_its_retry(ctx, demo):
    """C4, invariant 2: a queued row whose retry is scheduled later is still cancelled by STOP."""
    subscribe(ctx, PHONE, ["angebote"], locale="de")
    c = contact_of(ctx, PHONE)
    mid = enqueue(ctx, c.id, "newsletter:angebote", "Später")
    with ctx.db.write() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.message_id == mid)).one()
        row.attempt, row.run_at = 1, utcnow() + timedelta(minutes=5)
    simulator.phone_send(ctx, sim_account(ctx).id, PHONE, "stop")
    assert outbox_state(ctx, mid) == "cancelled"


def test_step3_opt_in_ttl_is_configurable(ctx, demo):
    """C2: KONSENT_OPTIN_TTL_HOURS shortens (or lengthens) the 48 h."""
    ctx.settings.optin_ttl_hours = 2
    pending = request_code(ctx, ["angebote"])
    assert timedelta(hours=1, minutes=59) < pending.expires_at - utcnow() <= timedelta(hours=2)
    with ctx.db.write() as s:
        assert optin.expire_opt_ins(s, utcnow() + timedelta(hours=1)) == 0
    with ctx.db.write() as s:
        assert optin.expire_opt_ins(s, utcnow() + timedelta(hours=2, minutes=1)) == 1


@pytest.mark.parametrize(
    ("ip", "hashed"), [("203.0.113.77", True), ("2001:db8::1", True), ("", False), ("bogus", False)]
)
def test_step4_ip_is_truncated_and_keyed_hashed_or_left_out(ctx, demo, ip, hashed):
    """C3: the evidence holds a keyed hash of the truncated IP; no IP, no hash (never a hash of "")."""
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        optin.request_opt_in(
            ctx,
            s,
            tenant,
            channel_account_id=sim_account(ctx).id,
            topic_slugs=["angebote"],
            locale="de",
            ip=ip,
        )
    with ctx.db.read() as s:
        stored = s.scalars(select(OptInRequest.ip_hash)).one()
    assert bool(stored) is hashed
    assert optin.truncate_ip("203.0.113.77") == "203.0.113.0"
    assert optin.truncate_ip("2001:db8:1:2::1") == "2001:db8:1::"
