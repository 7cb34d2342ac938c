"""Small helpers for tests: the demo simulator account, signing up a simulated phone."""

from __future__ import annotations

from konsent.flows.consent import optin
from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.flows.organisation import tenants
from konsent.store.tables import ChannelAccount, Tenant


def demo_tenant(ctx: Konsent) -> Tenant:
    with ctx.db.read() as s:
        return tenants.tenant_by_slug(s, "demo")


def sim_account(ctx: Konsent, tenant_id: int | None = None) -> ChannelAccount:
    with ctx.db.read() as s:
        tid = tenant_id or tenants.tenant_by_slug(s, "demo").id
        return next(a for a in tenants.channel_accounts(s, tid) if a.kind == "simulator")


def sim_page_key(ctx: Konsent) -> str:
    """The key in the demo simulator's links (flows.inbound.simulator_phones)."""
    from konsent.flows.inbound import simulator_phones

    return simulator_phones.open_page(ctx, None).key


def agents_see_unrouted(ctx: Konsent) -> None:
    """Let the demo's agents see conversations no team has (an agent sees only contacts with a
    conversation it may open: flows.inbox.scope)."""
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        tenant.settings = {**tenant.settings, "agents_see_unrouted": True}


def request_code(ctx: Konsent, topics: list[str], locale: str = "de") -> optin.PendingOptIn:
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, "demo")
        acc = next(a for a in tenants.channel_accounts(s, t.id) if a.kind == "simulator")
        return optin.request_opt_in(
            ctx,
            s,
            t,
            channel_account_id=acc.id,
            topic_slugs=topics,
            locale=locale,
            source_url="http://shop.example/demo",
            ip="203.0.113.77",
            user_agent="pytest",
        )


def subscribe(ctx: Konsent, phone: str, topics: list[str], locale: str = "de") -> None:
    """A visitor signs up in the widget and sends the code from the simulator phone."""
    pending = request_code(ctx, topics, locale)
    simulator.phone_send(ctx, sim_account(ctx).id, phone, pending.prefill, locale=locale)


def phone_texts(ctx: Konsent, phone: str) -> list[str]:
    return [m.text for m in simulator.phone_inbox(ctx, sim_account(ctx).id, phone)]
