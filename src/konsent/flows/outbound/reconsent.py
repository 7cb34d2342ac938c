"""Re-consent after a consent text changed (C6, C3).

The contacts whose active newsletter consent rests on an older version of their language's
text are asked, through the one door of `flows.messaging` (the legal-basis check; on a
channel with a service window, outside it only with an APPROVED template), to send back a
code from their own messenger. That confirmation, and nothing else, moves their consent to
the new version with a ledger entry. Who does not confirm keeps the consent they gave, on the
old version; broadcasts that require the new version (`min_text_version`) leave them out.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.channels.base import OutboundContent
from konsent.domain import optin as codes
from konsent.domain.errors import InvalidInput, NoLegalBasis, NotFound, WindowClosed
from konsent.domain.purposes import ConsentStatus, Purpose
from konsent.flows import audit, texts
from konsent.flows.consent.grants import grant_consent
from konsent.flows.context import Konsent
from konsent.flows.organisation import consent_texts
from konsent.flows.outbound import templates
from konsent.flows.outbound.messaging import enqueue_message, primary_identity
from konsent.i18n import t
from konsent.store.tables import (
    ChannelAccount,
    Consent,
    ConsentText,
    Contact,
    ReconsentCampaign,
    ReconsentRequest,
    Tenant,
    Topic,
)
from konsent.store.types import utcnow

VALID_DAYS = 30  # how long a re-consent code can be sent back

REQUEST = texts.N_(
    "{tenant} has updated its consent text for messages about: {topics}. The new text (version "
    "{version}):\n\n{text}\n\nTo agree to it, reply with this code: {code}\nIf you do not reply, "
    "nothing changes for you: your consent stays as you gave it. STOP unsubscribes."
)
CONFIRMED = texts.N_(
    "Thank you! Your consent for {topics} now rests on our current consent text (version {version})."
)
NOTHING_TO_CONFIRM = texts.N_("Thank you. There is no active subscription left to move to the new text.")
NO_TEXT = "there is no consent text in this language yet"
NO_CODE_VARIABLE = "the template needs a variable with {code} in it, so the contact can send the code back"


def _lang(contact: Contact, tenant: Tenant) -> str:
    return contact.locale or tenant.default_locale


def outdated(
    s: Session, tenant: Tenant, locale: str, topic_slugs: list[str] | None = None
) -> dict[int, dict[str, int]]:
    """contact id → {purpose: version} of active newsletter consents older than the current text."""
    ct = consent_texts.current(s, tenant.id, locale)
    if ct is None:
        return {}
    lang = func.coalesce(Contact.locale, tenant.default_locale)
    q = (
        select(Consent.contact_id, Consent.purpose, Consent.text_version)
        .join(Contact, (Contact.id == Consent.contact_id) & (Contact.tenant_id == Consent.tenant_id))
        .where(
            Consent.tenant_id == tenant.id,
            Consent.status == ConsentStatus.ACTIVE.value,
            Consent.purpose.like("newsletter:%"),
            Consent.text_version < ct.version,
            Contact.erased_at.is_(None),
            lang == locale,
        )
        .order_by(Consent.contact_id, Consent.purpose)
    )
    if topic_slugs:
        q = q.where(Consent.purpose.in_([str(Purpose.newsletter(x)) for x in topic_slugs]))
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, purpose, version in s.execute(q):
        out[int(cid)][purpose] = int(version)
    return dict(out)


@dataclass(frozen=True)
class TemplateChoice:
    """An approved template for contacts outside the channel's service window; `{code}` in a
    variable becomes the contact's code."""

    name: str
    language: str
    params: tuple[str, ...] = ()


def _names(s: Session, tenant_id: int, purposes: list[str], locale: str) -> str:
    slugs = [p.split(":", 1)[1] for p in purposes]
    rows = {
        tp.slug: tp
        for tp in s.scalars(select(Topic).where(Topic.tenant_id == tenant_id, Topic.slug.in_(slugs)))
    }
    return ", ".join(
        (rows[x].names.get(locale) or rows[x].names.get("de") or x) if x in rows else x for x in slugs
    )


def start(
    ctx: Konsent,
    s: Session,
    tenant: Tenant,
    locale: str,
    *,
    topic_slugs: list[str] | None = None,
    template: TemplateChoice | None = None,
    actor: str = "system",
    at: datetime | None = None,
) -> ReconsentCampaign:
    """Ask every contact whose consent rests on an older text of `locale` to confirm the current one.

    A contact already asked for this version with no answer yet is not asked again. Each request
    goes through `enqueue_message` (the legal-basis check); who cannot be reached lawfully is
    counted under the reason and not asked.
    """
    at = at or utcnow()
    consent_texts.check_locale(locale)
    ct = consent_texts.current(s, tenant.id, locale)
    if ct is None:
        raise InvalidInput(detail=NO_TEXT)
    if template is not None:
        if not any("{code}" in p for p in template.params):
            raise InvalidInput(detail=NO_CODE_VARIABLE)
        templates.require_approved_for_broadcast(
            s, tenant.id, None, template.name, template.language, list(template.params)
        )
    if topic_slugs:
        known = set(s.scalars(select(Topic.slug).where(Topic.tenant_id == tenant.id)))
        if any(x not in known for x in topic_slugs):
            raise InvalidInput(detail="unknown topic")
    targets = outdated(s, tenant, locale, topic_slugs)
    asked = set(
        s.scalars(
            select(ReconsentRequest.contact_id)
            .join(ReconsentCampaign, ReconsentCampaign.id == ReconsentRequest.campaign_id)
            .where(
                ReconsentRequest.tenant_id == tenant.id,
                ReconsentRequest.status == "sent",
                ReconsentCampaign.consent_text_id == ct.id,
                ReconsentCampaign.expires_at > at,
            )
        )
    )
    campaign = ReconsentCampaign(
        tenant_id=tenant.id,
        consent_text_id=ct.id,
        locale=locale,
        to_version=ct.version,
        topics=sorted({p for v in targets.values() for p in v}),
        targeted=len(targets),
        sent=0,
        skipped={},
        author=actor[:120],
        created_at=at,
        expires_at=at + timedelta(days=VALID_DAYS),
    )
    s.add(campaign)
    s.flush()
    skipped: Counter[str] = Counter()
    contacts = {
        c.id: c
        for c in s.scalars(
            select(Contact).where(Contact.tenant_id == tenant.id, Contact.id.in_(list(targets)))
        )
    }
    for cid, purposes in targets.items():
        if cid in asked:
            skipped["already_asked"] += 1
            continue
        reason = _ask(ctx, s, tenant, contacts[cid], ct, campaign, purposes, template, actor, at)
        if reason:
            skipped[reason] += 1
        else:
            campaign.sent += 1
    campaign.skipped = dict(skipped)
    audit.record(
        s, tenant.id, actor, "reconsent.start", f"consent_text:{locale}:{ct.version}",
        targeted=campaign.targeted, sent=campaign.sent, skipped=dict(skipped),
    )  # fmt: skip
    return campaign


def _ask(
    ctx: Konsent,
    s: Session,
    tenant: Tenant,
    contact: Contact,
    ct: ConsentText,
    campaign: ReconsentCampaign,
    purposes: dict[str, int],
    template: TemplateChoice | None,
    actor: str,
    at: datetime,
) -> str:
    """Queue one contact's request; the reason code when it may not or cannot be sent."""
    code = codes.new_code()
    locale = ct.locale
    names = _names(s, tenant.id, sorted(purposes), locale)
    text = t(locale, REQUEST, tenant=tenant.name, topics=names, version=ct.version, text=ct.text, code=code)
    purpose = sorted(purposes)[0]  # the request rests on a consent the contact gave
    try:
        try:
            msg = enqueue_message(ctx, s, contact, purpose, OutboundContent(text=text), author=actor, at=at)
        except WindowClosed:
            if template is None:
                return "window_closed"
            ident = primary_identity(s, contact)
            account = s.get(ChannelAccount, ident.channel_account_id)
            assert account is not None
            params = [p.replace("{code}", code) for p in template.params]
            content, row = templates.approved_content(
                ctx, s, account, template.name, template.language, params
            )
            msg = enqueue_message(ctx, s, contact, purpose, content, author=actor, at=at)
            msg.template_id, msg.template_version = row.id, row.version
    except NoLegalBasis as exc:
        return str(exc.params.get("reason_code") or "no_legal_basis")
    except WindowClosed:
        return "window_closed"
    except NotFound:
        return "no_identity"
    except InvalidInput:
        return "not_sendable"
    s.add(
        ReconsentRequest(
            tenant_id=tenant.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            code_hash=codes.code_digest(code),
            topics=sorted(purposes),
            from_versions=dict(purposes),
            message_id=msg.id,
            status="sent",
            created_at=at,
        )
    )
    return ""


class Outcome(enum.StrEnum):
    CONFIRMED = "confirmed"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Confirmation:
    outcome: Outcome
    reply: str


def confirm(
    ctx: Konsent, s: Session, account: ChannelAccount, contact: Contact, code: str, at: datetime
) -> Confirmation | None:
    """The contact sent a re-consent code: move their still-active consents to the new version.

    None when the code is no re-consent code of this contact (the opt-in path then looks at it):
    a code forwarded to someone else upgrades nobody.
    """
    at = min(at, utcnow())
    req = s.scalars(
        select(ReconsentRequest)
        .where(
            ReconsentRequest.tenant_id == account.tenant_id,
            ReconsentRequest.code_hash == codes.code_digest(code),
        )
        .with_for_update()
    ).one_or_none()
    if req is None or req.contact_id != contact.id:
        return None
    campaign = s.get(ReconsentCampaign, req.campaign_id)
    tenant = s.get(Tenant, account.tenant_id)
    assert campaign is not None and tenant is not None
    ct = s.get(ConsentText, campaign.consent_text_id)
    assert ct is not None
    locale = contact.locale or ct.locale
    if req.status == "confirmed":
        return Confirmation(Outcome.USED, t(locale, texts.CODE_USED))
    if at > campaign.expires_at:
        return Confirmation(Outcome.EXPIRED, t(locale, texts.CODE_EXPIRED))
    rows = s.scalars(
        select(Consent)
        .where(
            Consent.tenant_id == contact.tenant_id,
            Consent.contact_id == contact.id,
            Consent.purpose.in_(req.topics),
            Consent.status == ConsentStatus.ACTIVE.value,
        )
        .with_for_update()
    ).all()
    moved = []
    for row in rows:  # withdrawn meanwhile: stays withdrawn; a confirmation never re-subscribes
        if row.text_version >= campaign.to_version:
            continue
        evidence: dict[str, Any] = {
            "method": "re_consent",
            "source": "reconsent_request",
            "reconsent_campaign_id": campaign.id,
            "previous_text_version": row.text_version,
            "consent_text_hash": ct.text_hash,
            "consent_text_version": ct.version,
            "consent_text_locale": ct.locale,
            "privacy_url": tenant.privacy_url,
            "privacy_version": tenant.privacy_version,
            "channel": account.kind,
            "channel_account_id": account.id,
            "requested_at": req.created_at,
            "confirmed_at": at,
        }
        grant_consent(
            s,
            contact,
            Purpose.parse(row.purpose),
            text_version=ct.version,
            evidence=evidence,
            channel_account_id=row.channel_account_id or account.id,
            at=at,
        )
        moved.append(row.purpose)
    req.status = "confirmed"
    req.confirmed_at = at
    if not moved:
        return Confirmation(Outcome.CONFIRMED, t(locale, NOTHING_TO_CONFIRM))
    names = _names(s, tenant.id, sorted(moved), locale)
    return Confirmation(Outcome.CONFIRMED, t(locale, CONFIRMED, topics=names, version=ct.version))


@dataclass(frozen=True)
class Progress:
    campaign_id: int
    locale: str
    to_version: int
    targeted: int
    sent: int
    skipped: dict[str, int]
    confirmed: int
    pending: int
    still_outdated: int
    created_at: datetime
    expires_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.campaign_id,
            "locale": self.locale,
            "to_version": self.to_version,
            "targeted": self.targeted,
            "sent": self.sent,
            "skipped": self.skipped,
            "confirmed": self.confirmed,
            "pending": self.pending,
            "still_outdated": self.still_outdated,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def progress(s: Session, tenant: Tenant, campaign_id: int) -> Progress:
    if not 0 < campaign_id < 2**63:
        raise NotFound()
    c = s.get(ReconsentCampaign, campaign_id)
    if c is None or c.tenant_id != tenant.id:
        raise NotFound()
    confirmed = (
        s.scalar(
            select(func.count())
            .select_from(ReconsentRequest)
            .where(
                ReconsentRequest.tenant_id == tenant.id,
                ReconsentRequest.campaign_id == c.id,
                ReconsentRequest.status == "confirmed",
            )
        )
        or 0
    )
    still = (
        len(outdated(s, tenant, c.locale, [p.split(":", 1)[1] for p in c.topics] or None)) if c.topics else 0
    )
    return Progress(
        c.id, c.locale, c.to_version, c.targeted, c.sent, dict(c.skipped or {}), int(confirmed),
        c.sent - int(confirmed), still, c.created_at, c.expires_at,
    )  # fmt: skip


def campaigns(s: Session, tenant: Tenant, limit: int = 50) -> list[Progress]:
    ids = s.scalars(
        select(ReconsentCampaign.id)
        .where(ReconsentCampaign.tenant_id == tenant.id)
        .order_by(ReconsentCampaign.id.desc())
        .limit(limit)
    ).all()
    return [progress(s, tenant, i) for i in ids]
