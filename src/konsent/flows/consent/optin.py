"""Double opt-in where the contact writes first (C1, C2, C3)."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from konsent.domain import optin as codes
from konsent.domain.errors import InvalidInput
from konsent.domain.purposes import Purpose
from konsent.flows import texts
from konsent.flows.consent.grants import grant_consent
from konsent.flows.context import Konsent
from konsent.flows.organisation.tenants import account_config, current_consent_text, get_account, topics
from konsent.flows.webhooks.events import emit
from konsent.i18n import pick_locale, t
from konsent.store.tables import ChannelAccount, ConsentText, Contact, OptInRequest, Tenant
from konsent.store.types import utcnow

MAX_SOURCE_URL = 500


@dataclass(frozen=True)
class PendingOptIn:
    request_id: int
    code: str
    deep_link: str
    prefill: str
    expires_at: datetime


def truncate_ip(ip: str) -> str:
    """Drop the host part: /24 for IPv4, /48 for IPv6 (C3)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def request_opt_in(
    ctx: Konsent,
    s: Session,
    tenant: Tenant,
    *,
    channel_account_id: int,
    topic_slugs: list[str],
    locale: str,
    source_url: str = "",
    ip: str = "",
    user_agent: str = "",
    at: datetime | None = None,
) -> PendingOptIn:
    """Create a pending opt-in and the link that lets the contact confirm it. Sends nothing (C2)."""
    at = at or utcnow()
    locale = pick_locale(locale, tenant.default_locale)
    chosen = list(dict.fromkeys(topic_slugs))
    if not chosen:
        raise InvalidInput(detail=t(locale, texts.TICK_A_TOPIC))
    known = {tp.slug for tp in topics(s, tenant.id)}
    unknown = [x for x in chosen if x not in known]
    if unknown:
        raise InvalidInput(detail=t(locale, texts.UNKNOWN_TOPIC, topic=", ".join(unknown)[:100]))
    if len(source_url) > MAX_SOURCE_URL:
        raise InvalidInput(detail="source_url is too long")
    account = get_account(s, tenant.id, channel_account_id)
    adapter = ctx.adapter(account.kind)
    if not adapter.capabilities.receives_inbound:
        raise InvalidInput(detail="this channel cannot receive the confirmation code")
    text = current_consent_text(s, tenant, locale)
    code = codes.new_code()
    net = truncate_ip(ip)
    req = OptInRequest(
        tenant_id=tenant.id,
        code_hash=codes.code_digest(code),
        channel_account_id=account.id,
        topics=chosen,
        consent_text_id=text.id,
        privacy_url=tenant.privacy_url,
        privacy_version=tenant.privacy_version,
        source_url=source_url,
        ip_hash=ctx.keys.keyed_hash(s, tenant.id, net) if net else "",  # no address, no hash
        ua_hash=ctx.keys.keyed_hash(s, tenant.id, user_agent) if user_agent else "",
        locale=locale,
        requested_at=at,
        expires_at=codes.expires_at(at, ctx.settings.optin_ttl_hours),
    )
    s.add(req)
    s.flush()
    prefill = t(locale, texts.PREFILL, tenant=tenant.name, code=code)
    link = adapter.deep_link(account_config(ctx, s, account), code, prefill)
    return PendingOptIn(req.id, code, link, prefill, req.expires_at)


class ConfirmOutcome(enum.StrEnum):
    CONFIRMED = "confirmed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


@dataclass(frozen=True)
class Confirmation:
    outcome: ConfirmOutcome
    topics: tuple[str, ...] = ()
    locale: str | None = None


def confirm_opt_in(
    ctx: Konsent, s: Session, account: ChannelAccount, contact: Contact, code: str, at: datetime
) -> Confirmation:
    """The contact sent the code from their own messenger: activate those topics (C2, C3)."""
    # `at` is the provider's timestamp; a clock ahead of ours must not date the consent into the
    # future, where `may_send` would treat it as not yet given.
    at = min(at, utcnow())
    req = s.scalars(
        select(OptInRequest)
        .where(
            OptInRequest.tenant_id == account.tenant_id,
            OptInRequest.code_hash == codes.code_digest(code),
        )
        .with_for_update()
    ).one_or_none()
    if req is None:
        return Confirmation(ConfirmOutcome.UNKNOWN)
    if req.confirmed_at is not None:
        return Confirmation(ConfirmOutcome.USED, locale=req.locale)
    if at > req.expires_at:
        return Confirmation(ConfirmOutcome.EXPIRED, locale=req.locale)
    text = s.get(ConsentText, req.consent_text_id)
    assert text is not None and text.tenant_id == account.tenant_id
    req.confirmed_at = at
    req.contact_id = contact.id
    if not contact.locale:
        contact.locale = req.locale
    evidence = {
        "method": "double_opt_in",
        "source": "widget",
        "source_url": req.source_url,
        "consent_text_hash": text.text_hash,
        "consent_text_version": text.version,
        "consent_text_locale": text.locale,
        "privacy_url": req.privacy_url,
        "privacy_version": req.privacy_version,
        "channel": account.kind,
        "channel_account_id": account.id,
        "requested_at": req.requested_at,
        "confirmed_at": at,
        "ip_hash": req.ip_hash,
        "user_agent_hash": req.ua_hash,
    }
    for slug in req.topics:
        grant_consent(
            s,
            contact,
            Purpose.newsletter(slug),
            text_version=text.version,
            evidence=evidence,
            channel_account_id=account.id,
            at=at,
        )
    return Confirmation(ConfirmOutcome.CONFIRMED, tuple(req.topics), req.locale)


def expire_opt_ins(s: Session, now: datetime) -> int:
    """Delete opt-in requests past their expiry, confirmed or not (C2, L1)."""
    unconfirmed = s.execute(
        select(OptInRequest.id, OptInRequest.tenant_id, OptInRequest.topics, OptInRequest.channel_account_id)
        .where(OptInRequest.expires_at < now, OptInRequest.confirmed_at.is_(None))
        .limit(1000)
    ).all()
    for req_id, tenant_id, slugs, account_id in unconfirmed:
        data = {"optin_id": req_id, "topics": list(slugs or []), "channel_account_id": account_id}
        emit(s, tenant_id, "optin.expired", data, at=now)
    result = s.execute(delete(OptInRequest).where(OptInRequest.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
