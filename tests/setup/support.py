"""A company that is not the demo: tenant, owner, simulator channel, topics, consent texts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from konsent.flows.consent import optin
from konsent.flows.context import Konsent
from konsent.flows.inbound import simulator
from konsent.flows.organisation import company, consent_texts, staff, tenants, topics
from konsent.store.tables import Contact
from tests.helpers import sim_account

SLUG = "kaffee"
EMAIL = "owner@kaffee.example"
PASSWORD = "a-long-owner-password-1"
TEXT_DE_1 = "Ja, ich möchte Nachrichten der Kaffee GmbH erhalten. Widerruf jederzeit mit STOP."
TEXT_DE_2 = (
    "Ja, ich möchte Nachrichten der Kaffee GmbH und ihrer Röstereien erhalten. Widerruf jederzeit mit STOP."
)


@dataclass(frozen=True)
class Company:
    tenant_id: int
    account_id: int


def bare_tenant(ctx: Konsent, slug: str = SLUG) -> int:
    """Tenant and owner only, as `konsent tenant create` and `konsent user create` leave them."""
    with ctx.db.write() as s:
        t = tenants.create_tenant(ctx, s, slug, "Kaffee GmbH")
        staff.create_user(s, t, EMAIL, PASSWORD, "owner")
        return t.id


def make_company(ctx: Konsent, slug: str = SLUG) -> Company:
    """A set-up company with the simulator channel, topics `bohnen` and `kurse`, a German text v1."""
    tid = bare_tenant(ctx, slug)
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, slug)
        company.update_company(
            s,
            t,
            {
                "legal_name": "Kaffee GmbH",
                "address": "Röstweg 1, 20095 Hamburg",
                "representative": "Erika Bohne",
                "dpo_contact": "datenschutz@kaffee.example",
                "supervisory_authority": "HmbBfDI",
                "privacy_url": "https://kaffee.example/datenschutz",
                "privacy_version": "2026-12",
            },
        )
        topics.create_topic(s, t, "bohnen", {"de": "Bohnen", "en": "Beans"})
        topics.create_topic(s, t, "kurse", {"de": "Kurse", "en": "Courses"})
        consent_texts.publish(s, t, "de", TEXT_DE_1)
        acc = tenants.create_channel_account(
            ctx, s, t, "simulator", "Simulator", provider_ref="simulator",
            secrets_={"webhook_secret": secrets.token_urlsafe(24)},
        )  # fmt: skip
        return Company(tid, acc.id)


def subscribe(ctx: Konsent, co: Company, phone: str, slugs: list[str], locale: str = "de") -> int:
    """Widget opt-in and the code sent from the simulator phone; the contact's id."""
    with ctx.db.write() as s:
        t = tenants.tenant_by_slug(s, SLUG)
        pending = optin.request_opt_in(
            ctx, s, t, channel_account_id=co.account_id, topic_slugs=slugs, locale=locale,
            source_url="https://kaffee.example/", ip="203.0.113.9", user_agent="pytest",
        )  # fmt: skip
    simulator.phone_send(ctx, co.account_id, phone, pending.prefill, locale=locale)
    return contact_id(ctx, co, phone)


def contact_id(ctx: Konsent, co: Company, phone: str) -> int:
    from konsent.flows import contacts
    from konsent.flows.inbound.simulator import normalize_phone

    acc = sim_account(ctx, co.tenant_id)
    with ctx.db.read() as s:
        ident = contacts.find_identity(ctx, s, acc, normalize_phone(phone))
        assert ident is not None
        c = s.get(Contact, ident.contact_id)
        assert c is not None
        return c.id


def phone_texts(ctx: Konsent, co: Company, phone: str) -> list[str]:
    return [m.text for m in simulator.phone_inbox(ctx, co.account_id, phone)]
