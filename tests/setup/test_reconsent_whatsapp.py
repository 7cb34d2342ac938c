"""Re-consent on WhatsApp outside the 24-hour window: only with an APPROVED template (C6, CH3, #12 item 3)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from konsent.domain.errors import InvalidInput
from konsent.domain.events import InboundMessage
from konsent.domain.purposes import Purpose
from konsent.domain.templates import TemplateSpec
from konsent.flows.consent.grants import grant_consent
from konsent.flows.contacts import open_for_contact
from konsent.flows.inbound.receive import handle_event
from konsent.flows.organisation import consent_texts, tenants
from konsent.flows.outbound import reconsent, templates
from konsent.store.tables import Consent, Contact, Message, ReconsentRequest
from konsent.store.types import utcnow
from konsent.web.deps import Caller
from tests.setup.support import SLUG, TEXT_DE_2, make_company

WA_NUMBER = "+491705550001"


def _whatsapp_subscriber(ctx, hours_ago: int) -> tuple[int, int]:
    """A WhatsApp contact who last wrote `hours_ago` hours ago and consented under text v1."""
    co = make_company(ctx)
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, SLUG)
        acc = tenants.create_channel_account(
            ctx, s, t, "whatsapp", "WhatsApp", provider_ref="rc",
            secrets_={"access_token": "t", "app_secret": "a", "verify_token": "v"},
        )  # fmt: skip
        templates.save_template(
            ctx, s, Caller(co.tenant_id, "owner", "test"), acc.id,
            TemplateSpec("consent_update", "de", "UTILITY", "APPROVED", "Neuer Text, Code: {{1}}"),
        )  # fmt: skip
        acc_id = acc.id
    handle_event(
        ctx, acc_id, InboundMessage("wamid.rc1", WA_NUMBER, utcnow() - timedelta(hours=hours_ago), text="Hi")
    )
    with ctx.db.write() as s:
        contact = s.scalars(select(Contact).where(Contact.tenant_id == co.tenant_id)).one()
        grant_consent(s, contact, Purpose.newsletter("bohnen"), text_version=1, evidence={"method": "test"},
                      channel_account_id=acc_id, at=utcnow() - timedelta(hours=hours_ago))  # fmt: skip
        consent_texts.publish(s, tenants.tenant_by_slug(s, SLUG), "de", TEXT_DE_2)
        return contact.id, acc_id


def _start(ctx, template: reconsent.TemplateChoice | None):
    with ctx.db.write() as s:
        c = reconsent.start(ctx, s, tenants.tenant_by_slug(s, SLUG), "de", template=template)
        return c.sent, dict(c.skipped)


def test_outside_the_window_without_a_template_nobody_is_written_to(ctx):
    _whatsapp_subscriber(ctx, hours_ago=30)
    assert _start(ctx, None) == (0, {"window_closed": 1})
    with ctx.db.read() as s:
        assert s.scalars(select(Message).where(Message.direction == "out")).all() == []
        assert s.scalars(select(ReconsentRequest)).all() == []


def test_outside_the_window_the_approved_template_carries_the_code(ctx):
    cid, _ = _whatsapp_subscriber(ctx, hours_ago=30)
    assert _start(ctx, reconsent.TemplateChoice("consent_update", "de", ("{code}",))) == (1, {})
    with ctx.db.read() as s:
        msg = s.scalars(select(Message).where(Message.direction == "out")).one()
        contact = s.get(Contact, cid)
        assert contact is not None
        body = json.loads(open_for_contact(ctx, s, contact, "message", msg.body_sealed))
        assert body["template"] == "consent_update" and body["template_params"][0].startswith("KS")
        assert msg.purpose == "newsletter:bohnen" and msg.template_id is not None
        assert s.scalars(select(Consent.text_version)).one() == 1


def test_inside_the_window_the_plain_text_is_sent(ctx):
    _whatsapp_subscriber(ctx, hours_ago=2)
    assert _start(ctx, None) == (1, {})


@pytest.mark.parametrize(
    "choice",
    [
        reconsent.TemplateChoice("consent_update", "de", ("ohne Code",)),
        reconsent.TemplateChoice("nope", "de", ("{code}",)),
    ],
)
def test_a_template_that_is_not_approved_or_cannot_carry_the_code_is_refused(ctx, choice):
    _whatsapp_subscriber(ctx, hours_ago=30)
    with pytest.raises(InvalidInput), ctx.db.write() as s:
        reconsent.start(ctx, s, tenants.tenant_by_slug(s, SLUG), "de", template=choice)
    with ctx.db.read() as s:
        assert s.scalars(select(ReconsentRequest)).all() == []
