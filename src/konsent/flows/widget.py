"""The opt-in widget and the self-service page's proof codes (C1, C2, CH1).

Owns what the public pages read and do: `widget_config`, `widget_opt_in`, `send_proof_code`,
`verify_proof_code`, `has_proof`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from konsent.channels.base import OutboundContent
from konsent.domain.errors import Conflict, InvalidInput, NoLegalBasis, NotFound, WindowClosed
from konsent.domain.purposes import SERVICE
from konsent.flows.consent import optin
from konsent.flows.context import Konsent
from konsent.flows.organisation import tenants
from konsent.flows.outbound import messaging
from konsent.flows.privacy import proof_code, selfservice
from konsent.i18n import pick_locale, t
from konsent.store.tables import ChannelAccount, Tenant, Topic


def N_(msgid: str) -> str:
    """Mark a msgid; it is translated where it is shown."""
    return msgid


CHOOSE_CHANNEL = N_("Please choose one of the offered messengers.")
TEXT_CHANGED = N_("The consent text has just changed. Please read it again and submit once more.")


@dataclass(frozen=True)
class WidgetChannel:
    id: int
    kind: str
    label: str


@dataclass(frozen=True)
class WidgetTopic:
    slug: str
    name: str
    description: str


@dataclass(frozen=True)
class WidgetConfig:
    """Everything the widget shows for one tenant in one language."""

    tenant_slug: str
    tenant_name: str
    locale: str
    channels: list[WidgetChannel]
    topics: list[WidgetTopic]
    consent_text: str
    consent_version: int
    consent_locale: str
    privacy_url: str


def _localized(values: dict[str, Any], locale: str, fallback: str, default: str) -> str:
    return str(values.get(locale) or values.get(fallback) or default)


def _inbound_accounts(ctx: Konsent, accounts: list[ChannelAccount]) -> list[ChannelAccount]:
    """Only channels where the contact can send the code back to us (C2)."""
    out = []
    for acc in accounts:
        try:
            adapter = ctx.adapter(acc.kind)
        except LookupError:
            continue  # an account whose adapter is not installed in this build
        if adapter.capabilities.receives_inbound:
            out.append(acc)
    return out


def _topic_view(topic: Topic, locale: str, fallback: str) -> WidgetTopic:
    return WidgetTopic(
        slug=topic.slug,
        name=_localized(topic.names, locale, fallback, topic.slug),
        description=_localized(topic.descriptions, locale, fallback, ""),
    )


def widget_config(ctx: Konsent, tenant_slug: str, locale: str) -> WidgetConfig:
    """The tenant's channels, topics and current consent text, as the widget shows them (C1)."""
    with ctx.db.read() as s:
        tenant = tenants.tenant_by_slug(s, tenant_slug)
        locale = pick_locale(locale, tenant.default_locale)
        text = tenants.current_consent_text(s, tenant, locale)
        accounts = _inbound_accounts(ctx, tenants.channel_accounts(s, tenant.id))
        return WidgetConfig(
            tenant_slug=tenant.slug,
            tenant_name=tenant.name,
            locale=locale,
            channels=[WidgetChannel(a.id, a.kind, a.name or ctx.adapter(a.kind).label) for a in accounts],
            topics=[_topic_view(tp, locale, tenant.default_locale) for tp in tenants.topics(s, tenant.id)],
            consent_text=text.text,
            consent_version=text.version,
            consent_locale=text.locale,
            privacy_url=tenant.privacy_url,
        )


def widget_opt_in(
    ctx: Konsent,
    tenant_slug: str,
    *,
    channel_account_id: int,
    topic_slugs: list[str],
    locale: str,
    source_url: str = "",
    ip: str = "",
    user_agent: str = "",
    consent_version: int | None = None,
) -> optin.PendingOptIn:
    """A visitor ticked topics in the widget: a pending opt-in, nothing sent (C2)."""
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, tenant_slug)
        locale = pick_locale(locale, tenant.default_locale)
        offered = {a.id for a in _inbound_accounts(ctx, tenants.channel_accounts(s, tenant.id))}
        if channel_account_id not in offered:
            raise InvalidInput(detail=t(locale, CHOOSE_CHANNEL))
        if consent_version is not None:
            shown = tenants.current_consent_text(s, tenant, locale)
            if shown.version != consent_version:
                # The proof must name the text the visitor actually read (C3).
                raise Conflict(detail=t(locale, TEXT_CHANGED))
        return optin.request_opt_in(
            ctx,
            s,
            tenant,
            channel_account_id=channel_account_id,
            topic_slugs=topic_slugs,
            locale=locale,
            source_url=source_url,
            ip=ip,
            user_agent=user_agent[:500],
        )


# --- the contact's self-service pages: the proof code (D1-D4, #13) ---------------------------------

CODE_NOT_SENT = N_(
    "We cannot send you a code on your messenger right now. Please send INFO to us again for a new link."
)


def send_proof_code(ctx: Konsent, token: str, export: bool) -> None:
    """Send a fresh code for this link to the contact's messenger (a service message, stored redacted)."""
    with ctx.db.write() as s:
        contact = selfservice.link_contact(s, token, export)
        fresh = proof_code.new_code(ctx, s, contact, token)
        tenant = s.get(Tenant, contact.tenant_id)
        locale = contact.locale or (tenant.default_locale if tenant else "de")
        text = t(locale, proof_code.CODE_MESSAGE, code=fresh.code, minutes=proof_code.CODE_MINUTES)
        try:
            messaging.enqueue_message(ctx, s, contact, SERVICE, OutboundContent(text=text), author="system")
        except (NoLegalBasis, WindowClosed, NotFound) as exc:
            raise InvalidInput(detail=CODE_NOT_SENT) from exc


def verify_proof_code(ctx: Konsent, token: str, export: bool, code: str) -> str:
    """The session secret for this link if `code` is right, else "" (the failed try counts)."""
    with ctx.db.write() as s:
        contact = selfservice.link_contact(s, token, export)
        return proof_code.verify_code(ctx, s, contact, token, code[:32])


def has_proof(ctx: Konsent, token: str, export: bool, session: str) -> bool:
    with ctx.db.read() as s:
        contact = selfservice.link_contact(s, token, export)
        return proof_code.has_proof(ctx, s, contact, token, session)
