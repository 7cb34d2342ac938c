"""Platform opt-outs are withdrawals in the ledger (C4, CH6, #16 item 6): WhatsApp "stop promotions"
(user_preferences) and Messenger/Instagram marketing stop (messaging_optins) withdraw every
marketing purpose with their source and cancel queued marketing in the same transaction, visible
in the proof; a platform "resume" is recorded as an event and never taken as consent."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from konsent.channels.base import OutboundContent
from konsent.domain.purposes import Purpose
from konsent.flows.consent.grants import grant_consent
from konsent.flows.contacts import get_or_create_contact
from konsent.flows.context import Konsent
from konsent.flows.outbound.messaging import enqueue_message
from konsent.flows.privacy.proof import proof_document
from konsent.store.tables import ChannelAccount, Consent, Contact, OutboxRow
from konsent.store.types import utcnow
from tests.channels import fixtures_meta as fx

WHATSAPP = (
    "whatsapp",
    "+16505551234",
    fx.WA_USER_PREFERENCE_STOP,
    fx.WA_USER_PREFERENCE_RESUME,
    "provider_preference",
)
MESSENGER = (
    "messenger",
    "<PSID>",
    fx.page_envelope(fx.MS_ITEM_OPTIN_STOP, page_id=fx.PAGE_ID),
    fx.page_envelope(fx.MS_ITEM_OPTIN_RESUME, page_id=fx.PAGE_ID),
    "provider_unsubscribe",
)
INSTAGRAM = (
    "instagram",
    "<PSID>",
    fx.page_envelope(fx.MS_ITEM_OPTIN_STOP, page_id=fx.IG_ID, obj="instagram"),
    fx.page_envelope(fx.MS_ITEM_OPTIN_RESUME, page_id=fx.IG_ID, obj="instagram"),
    "provider_unsubscribe",
)


def _subscriber_with_queued_newsletter(ctx: Konsent, account_id: int, address: str) -> tuple[int, int]:
    """A contact with marketing consent, a message queued for it (not claimed), and a service reply."""
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        contact, ident, _ = get_or_create_contact(ctx, s, acc, address)
        ident.last_inbound_at = utcnow()
        contact.has_contacted_us = True
        grant_consent(
            s, contact, Purpose.newsletter("angebote"), text_version=1, evidence={"source": "test"},
            channel_account_id=acc.id, at=utcnow(),
        )  # fmt: skip
        news = enqueue_message(ctx, s, contact, "newsletter:angebote", OutboundContent(text="20% Rabatt"))
        enqueue_message(ctx, s, contact, "service", OutboundContent(text="Ihre Bestellung ist unterwegs"))
        return contact.id, news.id


def _post(client: Any, conn: fx.Connected, payload: Any) -> int:
    body = fx.meta_bytes(payload)
    return client.post(f"/webhooks/{conn.route_key}", content=body, headers=fx.signed(body)).status_code


def _state(
    ctx: Konsent, contact_id: int
) -> tuple[str, dict[str, str], list[tuple[str, str, dict[str, Any]]]]:
    with ctx.db.read() as s:
        status = s.scalars(select(Consent.status).where(Consent.contact_id == contact_id)).one()
        queued = {
            r.purpose: r.state for r in s.scalars(select(OutboxRow).where(OutboxRow.contact_id == contact_id))
        }
        contact = s.get(Contact, contact_id)
        assert contact is not None
        proof = proof_document(s, contact)
    ledger = [(e["action"], e["purpose"], e["payload"]) for e in proof["ledger"]]
    return status, queued, ledger


@pytest.mark.parametrize(("kind", "address", "stop", "resume", "source"), [WHATSAPP, MESSENGER, INSTAGRAM])
def test_platform_stop_withdraws_cancels_queued_marketing_and_shows_in_the_proof(
    ctx: Konsent, client, kind: str, address: str, stop: Any, resume: Any, source: str
) -> None:
    conn = fx.connect(ctx, kind)
    cid, _ = _subscriber_with_queued_newsletter(ctx, conn.account_id, address)
    assert _post(client, conn, stop) == 200
    status, queued, ledger = _state(ctx, cid)
    assert status == "withdrawn"
    assert queued == {"newsletter:angebote": "cancelled", "service": "available"}  # the service reply stays
    action, purpose, payload = ledger[-1]
    assert (action, purpose, payload["source"], payload["channel"]) == (
        "withdrawn",
        "newsletter:angebote",
        source,
        kind,
    )


@pytest.mark.parametrize(("kind", "address", "stop", "resume", "source"), [WHATSAPP, MESSENGER, INSTAGRAM])
def test_platform_resume_is_recorded_but_never_taken_as_consent(
    ctx: Konsent, client, kind: str, address: str, stop: Any, resume: Any, source: str
) -> None:
    conn = fx.connect(ctx, kind)
    cid, _ = _subscriber_with_queued_newsletter(ctx, conn.account_id, address)
    assert _post(client, conn, stop) == 200
    assert _post(client, conn, resume) == 200
    status, queued, ledger = _state(ctx, cid)
    assert status == "withdrawn"  # still: a new opt-in with its consent text is needed
    assert queued["newsletter:angebote"] == "cancelled"
    action, purpose, payload = ledger[-1]
    assert (action, purpose, payload["source"], payload["grants_consent"]) == (
        "platform_resume", "newsletter:*", source, False)  # fmt: skip
    assert [a for a, _, _ in ledger].count("granted") == 1  # the original opt-in only


def test_a_resume_without_an_earlier_stop_grants_nothing_either(ctx: Konsent, client) -> None:
    conn = fx.connect(ctx, "whatsapp")
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, conn.account_id)
        assert acc is not None
        contact, _, _ = get_or_create_contact(ctx, s, acc, "+16505551234")
        cid = contact.id
    assert _post(client, conn, fx.WA_USER_PREFERENCE_RESUME) == 200
    with ctx.db.read() as s:
        assert s.scalars(select(Consent).where(Consent.contact_id == cid)).all() == []
