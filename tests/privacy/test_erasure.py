"""Erasure with crypto-shredding (D2, C7, invariant 5)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from konsent import crypto
from konsent.domain.errors import NotFound
from konsent.flows.contacts import get_or_create_contact
from konsent.flows.privacy import rights as privacy
from konsent.store.tables import (
    AuditEntry,
    Consent,
    Contact,
    ContactIdentity,
    Conversation,
    ErasureNote,
    LedgerEntry,
    Message,
    OutboxRow,
    PrivacyRequest,
    SuppressionEntry,
)
from tests.helpers import phone_texts, request_code, sim_account
from tests.privacy.util import NAME, PHONE, SECRET_TEXT, contact_id_of, say, subscribed_contact


def _sealed_copy(ctx, contact_id):
    """What a backup taken now holds for this contact: its sealed columns."""
    with ctx.db.read() as s:
        c = s.get(Contact, contact_id)
        return {
            "name": c.name_sealed,
            "addresses": [i.address_sealed for i in s.scalars(select(ContactIdentity))],
            "bodies": [
                m.body_sealed for m in s.scalars(select(Message).where(Message.contact_id == contact_id))
            ],
        }


def _count(s, model, **where):
    q = select(func.count()).select_from(model)
    for k, v in where.items():
        q = q.where(getattr(model, k) == v)
    return s.scalar(q)


def test_delete_keyword_asks_for_confirmation_and_erases_nothing_yet(ctx, demo):
    """D2: LÖSCHEN alone only asks; the data stays until the contact confirms."""
    cid = subscribed_contact(ctx)
    say(ctx, "LÖSCHEN")
    assert "LÖSCHEN JA" in phone_texts(ctx, PHONE)[-1]
    with ctx.db.read() as s:
        assert s.get(Contact, cid).wrapped_key is not None
        req = s.scalars(select(PrivacyRequest)).one()
        assert (req.kind, req.channel, req.state) == ("erasure", "keyword", "confirming")


def test_confirmed_erasure_shreds_key_so_a_copy_taken_before_cannot_be_decrypted(ctx, demo):
    """D2, invariant 5: after LÖSCHEN + LÖSCHEN JA the old ciphertexts do not open with the keys in the DB."""
    cid = subscribed_contact(ctx)
    before = _sealed_copy(ctx, cid)
    with ctx.db.read() as s:  # the copy is readable while the contact exists
        c = s.get(Contact, cid)
        key = ctx.keys.contact_key(s, c)
        assert crypto.open_text(key, before["name"], f"contact:{cid}:name".encode()) == NAME
    say(ctx, "LÖSCHEN")
    say(ctx, "löschen ja")
    ctx.keys.forget()  # a fresh process: only what is in the database now
    with ctx.db.read() as s:
        c = s.get(Contact, cid)
        assert c.wrapped_key is None and c.name_sealed is None and c.erased_at is not None
        with pytest.raises(crypto.DecryptionError):
            ctx.keys.contact_key(s, c)
        tenant_key = ctx.keys.tenant(s, c.tenant_id).data_key
        for blob in [before["name"], *before["addresses"], *before["bodies"]]:
            with pytest.raises(crypto.DecryptionError):
                crypto.open_sealed(tenant_key, blob, f"contact:{cid}:message".encode())
        for model in (Message, Conversation, ContactIdentity, Consent, OutboxRow):
            assert _count(s, model, contact_id=cid) == 0, model
        assert _count(s, SuppressionEntry) == 1
        note = s.scalars(select(ErasureNote)).one()
        assert note.source == "keyword"
        req = s.scalars(select(PrivacyRequest)).one()
        assert req.state == "done" and req.contact_id is None
        erased = s.scalars(select(LedgerEntry).where(LedgerEntry.action == "erased")).all()
        assert [e.purpose for e in erased] == ["newsletter:angebote"]
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.erase")).one()


def test_ledger_and_audit_keep_no_personal_data_after_erasure(ctx, demo):
    """D2: what stays (ledger, audit, notes, suppression) holds no number, name or text."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "email")
    with ctx.db.read() as s:
        kept = json.dumps(
            [e.payload for e in s.scalars(select(LedgerEntry))]
            + [e.payload for e in s.scalars(select(AuditEntry))],
            default=str,
        )
    # (not short digit runs: hex hashes may contain them by chance)
    for secret in (PHONE, PHONE[1:], NAME, "Erika", SECRET_TEXT):
        assert secret not in kept


def test_erasure_cancels_queued_messages(ctx, demo):
    """D2: queued outbox rows go with the contact; nothing is sent afterwards."""
    from konsent.flows import message_desk

    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        message_desk.send_message(ctx, s, demo.tenant_id, "user:1", cid, "newsletter:angebote", "Sale!")
    with ctx.db.read() as s:
        assert _count(s, OutboxRow, contact_id=cid, state="available") == 1
    n_before = len(phone_texts(ctx, PHONE))
    with ctx.db.write() as s:
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "letter")
    say(ctx, "Hallo?")  # drains the worker; the number is a new contact now
    assert all("Sale!" not in t for t in phone_texts(ctx, PHONE)[n_before:])


def test_confirmation_without_request_or_after_24h_erases_nothing(ctx, demo):
    """D2: 'DELETE YES' only works within 24 h after DELETE."""
    from datetime import timedelta

    cid = subscribed_contact(ctx)
    say(ctx, "DELETE YES")
    assert "zuerst LÖSCHEN" in phone_texts(ctx, PHONE)[-1]
    say(ctx, "DELETE")
    with ctx.db.write() as s:
        req = s.scalars(select(PrivacyRequest).where(PrivacyRequest.state == "confirming")).one()
        req.confirm_until = req.received_at - timedelta(seconds=1)
    say(ctx, "DELETE YES")
    with ctx.db.read() as s:
        assert s.get(Contact, cid).erased_at is None


def test_fresh_opt_in_after_erasure_is_allowed_but_import_is_suppressed(ctx, demo):
    """D2, C7: the person may come back by writing a new code; a silent re-add is blocked."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", cid, "email")
    with ctx.db.read() as s:
        assert privacy.is_suppressed(ctx, s, demo.tenant_id, PHONE)
        with pytest.raises(privacy.Suppressed):
            privacy.check_not_suppressed(ctx, s, demo.tenant_id, PHONE)
        assert not privacy.is_suppressed(ctx, s, demo.tenant_id, "+4915199999999")
    pending = request_code(ctx, ["angebote"])
    say(ctx, pending.prefill)
    new_id = contact_id_of(ctx)
    assert new_id != cid
    with ctx.db.read() as s:
        row = s.scalars(select(Consent).where(Consent.contact_id == new_id)).one()
        assert row.status == "active"


def test_staff_erase_of_other_tenants_contact_is_not_found(ctx, demo):
    """S2: an erasure never reaches another tenant's contact."""
    from konsent.flows.organisation import tenants

    with ctx.db.write() as s:
        other = tenants.create_tenant(ctx, s, "other", "Other GmbH")
        acc = tenants.create_channel_account(
            ctx, s, other, "simulator", "Sim", secrets_={"webhook_secret": "x"}
        )
        c, _, _ = get_or_create_contact(ctx, s, acc, "+4917000000000")
        other_cid = c.id
    with ctx.db.write() as s, pytest.raises(NotFound):
        privacy.staff_erase(ctx, s, demo.tenant_id, "user:1", other_cid, "email")
    assert sim_account(ctx)
