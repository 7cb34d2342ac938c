"""Seeding audiences for broadcast tests: contacts with consent, created through the flows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from konsent.channels import register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
)
from konsent.domain.purposes import Purpose
from konsent.flows.consent.grants import grant_consent
from konsent.flows.contacts import get_or_create_contact
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.store.tables import ChannelAccount
from konsent.store.types import utcnow


@register
class WindowedChannel(ChannelAdapter):
    """A test channel with a 24-hour window and templates, like WhatsApp (recorded in memory)."""

    kind = "test_windowed"
    label = "Windowed test channel"
    capabilities = Capabilities(service_window_hours=24, templates=True, throughput_per_s=10_000)
    sent: list[tuple[str, OutboundContent]] = []  # noqa: RUF012 - a test recorder

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        WindowedChannel.sent.append((address, content))
        return SendResult(SendOutcome.SENT, provider_id=f"w.{uuid.uuid4().hex}")


def add_account(ctx: Konsent, tenant_id: int, kind: str, **settings: object) -> int:
    with ctx.db.write() as s:
        t = s.get(tenants.Tenant, tenant_id)
        assert t is not None
        return tenants.create_channel_account(ctx, s, t, kind, kind, settings=dict(settings)).id


def seed(
    ctx: Konsent,
    account_id: int,
    phones: list[str],
    topic: str = "angebote",
    *,
    text_version: int = 1,
    last_inbound: datetime | None = None,
    name: str | None = "Erika Mustermann",
    consent: bool = True,
    locale: str | None = None,
) -> list[int]:
    """Contacts on an account with active consent for a topic; returns their ids."""
    ids = []
    at = utcnow() - timedelta(minutes=5)
    with ctx.db.write() as s:
        acc = s.get(ChannelAccount, account_id)
        assert acc is not None
        for phone in phones:
            contact, ident, _ = get_or_create_contact(ctx, s, acc, phone, name=name, locale=locale)
            ident.last_inbound_at = last_inbound
            contact.last_activity_at = last_inbound or at
            if consent:
                grant_consent(
                    s,
                    contact,
                    Purpose.newsletter(topic),
                    text_version=text_version,
                    evidence={"source": "test"},
                    channel_account_id=acc.id,
                    at=at,
                )
            ids.append(contact.id)
    return ids
