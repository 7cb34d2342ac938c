"""The demo tenant "Demo GmbH": two topics, consent texts, the simulator channel, an owner (U1)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from konsent.flows.context import Konsent
from konsent.flows.inbox import bot
from konsent.flows.organisation import company, staff, tenants
from konsent.store.tables import Tenant

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.example"

CONSENT_TEXT = {
    "de": (
        "Ja, ich möchte von der Demo GmbH Nachrichten zu den ausgewählten Themen über den gewählten "
        "Messenger erhalten. Meine Einwilligung kann ich jederzeit widerrufen, indem ich STOP sende; "
        "der Widerruf berührt nicht die Rechtmäßigkeit der bis dahin erfolgten Verarbeitung. "
        "Einzelheiten stehen in der Datenschutzerklärung."
    ),
    "en": (
        "Yes, I would like to receive messages from Demo GmbH about the selected topics through the "
        "messenger I chose. I can withdraw my consent at any time by sending STOP; withdrawal does not "
        "affect the lawfulness of processing before it. Details are in the privacy policy."
    ),
}


@dataclass(frozen=True)
class DemoSeed:
    created: bool
    tenant_id: int
    admin_email: str
    admin_password: str | None  # shown once, only when the demo was created now


def seed_demo(ctx: Konsent) -> DemoSeed:
    """Create the demo tenant unless it exists; return the one-time admin password if new."""
    with ctx.db.write() as s:
        existing = s.scalars(select(Tenant).where(Tenant.slug == DEMO_SLUG)).one_or_none()
        if existing is not None:
            return DemoSeed(False, existing.id, DEMO_EMAIL, None)
        base = ctx.settings.base_url.rstrip("/")
        tenant = tenants.create_tenant(
            ctx,
            s,
            DEMO_SLUG,
            "Demo GmbH",
            default_locale="de",
            privacy_url=f"{base}/demo/privacy",
            privacy_version="2026-11",
        )
        company.update_company(  # the controller data the privacy notice and Art. 30 record name
            s,
            tenant,
            {
                "legal_name": "Demo GmbH",
                "address": "Musterstraße 1, 12345 Musterstadt",
                "representative": "Marta Beispiel (Geschäftsführerin)",
                "dpo_contact": "datenschutz@demo.example",
                "supervisory_authority": "Landesbeauftragte für Datenschutz Musterland (fiktiv)",
            },
        )
        tenants.add_topic(
            s,
            tenant,
            "angebote",
            {"de": "Angebote", "en": "Offers"},
            {
                "de": "Aktionen und Rabatte, höchstens einmal pro Woche",
                "en": "Deals and discounts, at most once a week",
            },
        )
        tenants.add_topic(
            s,
            tenant,
            "produktnews",
            {"de": "Produktneuheiten", "en": "Product news"},
            {"de": "Neue Produkte und Termine", "en": "New products and dates"},
        )
        for locale, text in CONSENT_TEXT.items():
            tenants.set_consent_text(s, tenant, locale, text)
        tenants.create_channel_account(
            ctx,
            s,
            tenant,
            "simulator",
            "Simulator",
            provider_ref="simulator",
            secrets_={"webhook_secret": secrets.token_urlsafe(24)},
        )
        password = secrets.token_urlsafe(12)
        staff.create_user(
            s, tenant, DEMO_EMAIL, password, "owner", name="Demo Admin", must_change_password=True
        )
        bot.seed_demo_flow(s, tenant.id)
        return DemoSeed(True, tenant.id, DEMO_EMAIL, password)
