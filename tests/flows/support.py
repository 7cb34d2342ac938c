"""Small helpers for the issue-2 flow and invariant tests."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from konsent.channels.base import OutboundContent, WebhookRequest
from konsent.channels.simulator import SIGNATURE_HEADER, sign
from konsent.flows import contacts
from konsent.flows.context import Konsent
from konsent.flows.inbound.simulator import normalize_phone
from konsent.flows.organisation import staff, tenants
from konsent.flows.outbound import messaging
from konsent.store.tables import ChannelAccount, Contact, Message, OutboxRow
from tests.helpers import sim_account


def contact_of(ctx: Konsent, phone: str) -> Contact:
    """The contact behind a simulated phone number."""
    acc = sim_account(ctx)
    with ctx.db.read() as s:
        ident = contacts.find_identity(ctx, s, acc, normalize_phone(phone))
        assert ident is not None, "no contact for this phone"
        c = s.get(Contact, ident.contact_id)
        assert c is not None
        return c


def consent_states(ctx: Konsent, contact_id: int) -> dict[str, str]:
    with ctx.db.read() as s:
        c = s.get(Contact, contact_id)
        assert c is not None
        return {r.purpose: r.status for r in contacts.consent_rows(s, c)}


def enqueue(ctx: Konsent, contact_id: int, purpose: str, text: str) -> int:
    """Queue one message through the one door (`enqueue_message`); return the message id."""
    with ctx.db.write() as s:
        c = s.get(Contact, contact_id)
        assert c is not None
        return messaging.enqueue_message(ctx, s, c, purpose, OutboundContent(text=text), author="test").id


def message_status(ctx: Konsent, message_id: int) -> tuple[str, str]:
    with ctx.db.read() as s:
        m = s.get(Message, message_id)
        assert m is not None
        return m.status, m.status_reason


def outbox_state(ctx: Konsent, message_id: int) -> str:
    with ctx.db.read() as s:
        return s.scalars(select(OutboxRow.state).where(OutboxRow.message_id == message_id)).one()


def count(ctx: Konsent, model: type) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def api_token(ctx: Konsent, role: str = "admin", slug: str = "demo") -> str:
    with ctx.db.write() as s:
        return staff.create_api_token(s, tenants.tenant_by_slug(s, slug), f"test-{role}", role)


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def signed_request(ctx: Konsent, account: ChannelAccount, payload: dict) -> WebhookRequest:
    """A simulator delivery exactly as the provider side signs it (for raw or repeated webhooks)."""
    body = json.dumps(payload).encode()
    with ctx.db.read() as s:
        secret = tenants.account_config(ctx, s, account).secrets["webhook_secret"]
    return WebhookRequest(
        method="POST",
        headers={SIGNATURE_HEADER: sign(secret, body), "content-type": "application/json"},
        query={},
        body=body,
    )
