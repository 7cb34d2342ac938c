"""Fixtures for the inbox and chatbot tests: staff of each role, teams, a simulated phone."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.flows.organisation import staff, teams
from konsent.store.tables import Conversation, StaffUser
from konsent.web.deps import Caller
from tests.helpers import demo_tenant, sim_account

PASSWORD = "correct horse battery"
_HASH: list[str] = []


def password_hash() -> str:
    """One argon2 hash per test session: hashing is slow on purpose."""
    if not _HASH:
        _HASH.append(staff._hasher.hash(PASSWORD))
    return _HASH[0]


@dataclass
class Crew:
    tenant_id: int
    account_id: int
    sales: int
    support: int
    users: dict[str, StaffUser]

    def caller(self, who: str) -> Caller:
        u = self.users[who]
        return Caller(self.tenant_id, u.role, f"user:{u.id}", u, "csrf")


@pytest.fixture
def crew(ctx: Konsent, demo) -> Crew:  # type: ignore[no-untyped-def]
    """The demo tenant with an owner, an admin, two agents (sales, support), a dpo and a viewer."""
    tenant = demo_tenant(ctx)
    users: dict[str, StaffUser] = {}
    with ctx.db.write() as s:
        sales = teams.team_by_slug(s, tenant.id, "sales")
        support = teams.team_by_slug(s, tenant.id, "support")
        assert sales and support
        for name, role in (
            ("owner", "owner"),
            ("admin", "admin"),
            ("anna", "agent"),
            ("sven", "agent"),
            ("dpo", "dpo"),
            ("viewer", "viewer"),
        ):
            user = StaffUser(
                tenant_id=tenant.id,
                email=f"{name}.staff@demo.example",
                name=name,
                password_hash=password_hash(),
                role=role,
                locale="de",
            )
            s.add(user)
            s.flush()
            users[name] = user
        teams.add_member(s, tenant.id, sales.id, users["anna"].id)
        teams.add_member(s, tenant.id, support.id, users["sven"].id)
        sales_id, support_id = sales.id, support.id
    return Crew(tenant.id, sim_account(ctx).id, sales_id, support_id, users)


def say(ctx: Konsent, crew: Crew, phone: str, text: str, button: str | None = None, name: str | None = None):  # type: ignore[no-untyped-def]
    return simulator.phone_send(ctx, crew.account_id, phone, text, button=button, name=name, locale="de")


def conversation_of(ctx: Konsent, crew: Crew, phone: str) -> Conversation:
    """The newest conversation of the contact behind a simulated phone."""
    from sqlalchemy import select

    from konsent.flows.contacts import find_identity
    from konsent.store.tables import ChannelAccount

    with ctx.db.read() as s:
        acc = s.get(ChannelAccount, crew.account_id)
        assert acc is not None
        ident = find_identity(ctx, s, acc, simulator.normalize_phone(phone))
        assert ident is not None
        return s.scalars(
            select(Conversation)
            .where(Conversation.contact_id == ident.contact_id)
            .order_by(Conversation.id.desc())
        ).first()


def sign_in(client, ctx: Konsent, user: StaffUser) -> str:  # type: ignore[no-untyped-def]
    """Give the test client a staff session; returns its CSRF token."""
    from konsent.web.deps import SESSION_COOKIE

    with ctx.db.write() as s:
        sess = staff.start_session(s, s.get(StaffUser, user.id), 1)  # type: ignore[arg-type]
    client.cookies.set(SESSION_COOKIE, sess.cookie)
    return sess.csrf_token


def drain(ctx: Konsent) -> int:
    """Deliver what is queued. Without per-account advisory locks: those are database-wide on
    PostgreSQL, so a parallel test run in another schema could hold the same lock key."""
    import asyncio

    from konsent.delivery.worker import Worker

    return asyncio.run(Worker(ctx, exclusive_accounts=False).drain())


def threema_account(ctx: Konsent) -> int:
    """A Threema account of the demo tenant (a channel without buttons); its id."""
    from konsent.flows.organisation import tenants

    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        return tenants.create_channel_account(
            ctx, s, tenant, "threema", "Threema", provider_ref="*KONSENT",
            secrets_={"api_secret": "x", "private_key": "y"},
        ).id  # fmt: skip
