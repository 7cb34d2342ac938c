"""Rectification, objection and the data-subject request log (D3, D4, D5, S4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound
from konsent.flows import message_desk
from konsent.flows.contacts import contact_name, get_contact
from konsent.flows.privacy import rights as privacy
from konsent.store.tables import AuditEntry, Consent, PrivacyRequest
from konsent.store.types import utcnow
from tests.privacy.util import NAME, subscribed_contact


def test_rectification_changes_name_and_audits_fields_not_values(ctx, demo):
    """D3, S4: the audit entry says which field changed, never the old or new value."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        assert privacy.rectify_contact(ctx, s, demo.tenant_id, "user:3", cid, name="Erika Musterfrau") == [
            "name"
        ]
    with ctx.db.read() as s:
        assert contact_name(ctx, s, get_contact(s, demo.tenant_id, cid)) == "Erika Musterfrau"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.rectify")).one()
        assert entry.payload["fields"] == ["name"] and "Muster" not in str(entry.payload)
        req = s.scalars(select(PrivacyRequest)).one()
        assert (req.kind, req.state, req.handled_by) == ("rectification", "done", "user:3")
    with ctx.db.write() as s, pytest.raises(InvalidInput):
        privacy.rectify_contact(ctx, s, demo.tenant_id, "user:3", cid)
    with ctx.db.write() as s, pytest.raises(InvalidInput):
        privacy.rectify_contact(ctx, s, demo.tenant_id, "user:3", cid, name="x" * 201)
    with ctx.db.read() as s:
        assert contact_name(ctx, s, get_contact(s, demo.tenant_id, cid)) != NAME


def test_objection_withdraws_every_marketing_purpose_and_blocks_new_sends(ctx, demo):
    """D4: one objection withdraws all topics (ledger) and later newsletters are refused."""
    cid = subscribed_contact(ctx)
    with ctx.db.write() as s:
        done = privacy.object_to_marketing(ctx, s, demo.tenant_id, "user:3", cid, channel="letter")
    assert done == ["newsletter:angebote"]
    with ctx.db.read() as s:
        assert {c.status for c in s.scalars(select(Consent))} == {"withdrawn"}
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.object")).one()
    with ctx.db.write() as s, pytest.raises(NoLegalBasis):
        message_desk.send_message(ctx, s, demo.tenant_id, "user:1", cid, "newsletter:angebote", "Sale")


def test_request_log_due_in_one_month_and_overdue_warning(ctx, demo):
    """D5: a request entered from a letter is due one month later; past that it is overdue until closed."""
    received = utcnow() - timedelta(days=40)
    with ctx.db.write() as s:
        req = privacy.log_request(
            s,
            demo.tenant_id,
            "access",
            "letter",
            received_at=received,
            handled_by="user:3",
            note="Brief vom 3.10.",
        )
        rid = req.id
    with ctx.db.read() as s:
        assert req.due_at.month != received.month
        assert [r.id for r in privacy.overdue_requests(s, demo.tenant_id)] == [rid]
    with ctx.db.write() as s:
        privacy.close_request(s, demo.tenant_id, rid, "user:3")
    with ctx.db.read() as s:
        assert privacy.overdue_requests(s, demo.tenant_id) == []
    for kind, channel in (("nonsense", "letter"), ("access", "pigeon")):
        with ctx.db.write() as s, pytest.raises(InvalidInput):
            privacy.log_request(s, demo.tenant_id, kind, channel)
    with ctx.db.write() as s, pytest.raises(NotFound):
        privacy.close_request(s, demo.tenant_id + 99, rid, "user:3")
