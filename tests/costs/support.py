"""A priced test channel (WhatsApp-like: templates, a 24-hour window, per-message pricing) and helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from konsent.channels import register
from konsent.channels.base import (
    AccountConfig,
    Capabilities,
    ChannelAdapter,
    OutboundContent,
    SendOutcome,
    SendResult,
)
from konsent.flows.context import Konsent
from konsent.flows.outbound import broadcast as bc
from konsent.flows.outbound import costs
from konsent.store.tables import MessageTemplate
from tests.broadcast.seed import add_account

PRICES = """country,category,price
DE,marketing,0.10
AT,marketing,0.12
*,marketing,0.20
DE,utility,0.04
*,utility,0.05
DE,service,0
"""


@register
class PricedChannel(ChannelAdapter):
    """Charges per message like WhatsApp; sends are recorded in memory."""

    kind = "test_priced"
    label = "Priced test channel"
    capabilities = Capabilities(
        service_window_hours=24, templates=True, throughput_per_s=10_000, priced_per_message=True
    )
    sent: list[tuple[str, OutboundContent]] = []  # noqa: RUF012 - a test recorder

    async def send(self, account: AccountConfig, address: str, content: OutboundContent) -> SendResult:
        PricedChannel.sent.append((address, content))
        return SendResult(SendOutcome.SENT, provider_id=f"p.{uuid.uuid4().hex}")


def priced_account(ctx: Konsent, tenant_id: int) -> int:
    PricedChannel.sent.clear()
    return add_account(ctx, tenant_id, "test_priced")


def import_prices(ctx: Konsent, tenant_id: int, text: str = PRICES, valid_from: str = "2026-01-01") -> None:
    with ctx.db.write() as s:
        day = datetime.fromisoformat(valid_from).replace(tzinfo=UTC)
        costs.import_prices(s, tenant_id, text, day, source="prices.csv", actor="test")


def template(ctx: Konsent, tenant_id: int, account_id: int, name: str, category: str) -> None:
    with ctx.db.write() as s:
        row = s.scalars(
            select(MessageTemplate).where(
                MessageTemplate.channel_account_id == account_id, MessageTemplate.name == name
            )
        ).one_or_none()
        if row is None:
            row = MessageTemplate(
                tenant_id=tenant_id, channel_account_id=account_id, name=name, language="de",
                status="APPROVED", body="Hallo, unser Angebot", header="", buttons=[], variables=0, version=1,
            )  # fmt: skip
            s.add(row)
        row.category = category


def template_broadcast(ctx: Konsent, tenant_id: int, account_id: int, name: str = "angebot") -> int:
    with ctx.db.write() as s:
        b = bc.create_broadcast(
            ctx, s, tenant_id, name="Offers", topic="angebote", template=name, template_language="de",
            channel_account_id=account_id,
        )  # fmt: skip
        return b.id


def send_now(ctx: Konsent, tenant_id: int, bid: int, size: int = 2000) -> None:
    with ctx.db.write() as s:
        bc.schedule(s, bc.get_broadcast(s, tenant_id, bid, lock=True), None, actor="test")
    bc.queue_all(ctx, tenant_id, bid, size=size)
