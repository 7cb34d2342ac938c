"""Helpers for contact-data tests: contacts of two tenants made directly through the flows."""

from __future__ import annotations

import base64

from konsent.flows import contacts
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.store.tables import ChannelAccount


def other_tenant(ctx: Konsent, slug: str = "other") -> int:
    """A second tenant with a simulator account; returns its id."""
    with ctx.db.write() as s:
        t = tenants.create_tenant(ctx, s, slug, "Other GmbH")
        tenants.create_channel_account(
            ctx, s, t, "simulator", "Sim", secrets_={"webhook_secret": base64.b64encode(b"x" * 20).decode()}
        )
        return t.id


def account(ctx: Konsent, tenant_id: int) -> ChannelAccount:
    with ctx.db.read() as s:
        return next(a for a in tenants.channel_accounts(s, tenant_id) if a.kind == "simulator")


def make_contact(ctx: Konsent, tenant_id: int, phone: str, name: str | None = None) -> int:
    """A contact who wrote from `phone` with a messenger profile `name`."""
    acc = account(ctx, tenant_id)
    with ctx.db.write() as s:
        c, _, _ = contacts.get_or_create_contact(ctx, s, acc, phone, name=name)
        return c.id
