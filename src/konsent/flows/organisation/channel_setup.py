"""Setup calls konsent makes at a provider for a channel account: registering the webhook (CH2).

Used by the admin's channel page and by `konsent channels register-webhook`. Which
providers support it is the adapter's `registers_webhook`; the flow never asks
which provider it is.
"""

from __future__ import annotations

import asyncio

from konsent.channels.base import AccountConfig, SetupOutcome
from konsent.domain.errors import InvalidInput
from konsent.flows import audit
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.store.tables import ChannelAccount

REGISTER_TIMEOUT_S = 30.0


def webhook_url(base_url: str, account: ChannelAccount) -> str:
    """The URL the provider posts this account's events to."""
    return f"{base_url.rstrip('/')}/webhooks/{account.route_key}"


def _load(ctx: Konsent, tenant_id: int, account_id: int) -> tuple[ChannelAccount, AccountConfig]:
    with ctx.db.read() as s:
        acc = tenants.get_account(s, tenant_id, account_id)  # another tenant's account: NotFound
        if not acc.active:
            raise InvalidInput(detail="This channel account is switched off.")
        return acc, tenants.account_config(ctx, s, acc)


async def register_webhook(
    ctx: Konsent, tenant_id: int, actor: str, account_id: int, base_url: str | None = None
) -> SetupOutcome:
    """Point the provider at konsent's webhook URL with the account's secret; audited (CH2, S4)."""
    acc, cfg = await asyncio.to_thread(_load, ctx, tenant_id, account_id)
    adapter = ctx.adapter(acc.kind)
    if not adapter.registers_webhook:
        raise InvalidInput(detail="For this channel the webhook URL is entered at the provider.")
    url = webhook_url(base_url or ctx.settings.base_url, acc)
    try:
        outcome = await asyncio.wait_for(adapter.register_webhook(cfg, url), REGISTER_TIMEOUT_S)
    except TimeoutError:
        outcome = SetupOutcome(False, "unreachable", "timeout")

    def record() -> None:
        with ctx.db.write() as s:
            audit.record(s, tenant_id, actor, "channel.webhook_register", f"channel:{acc.id}", ok=outcome.ok)

    await asyncio.to_thread(record)
    return outcome
