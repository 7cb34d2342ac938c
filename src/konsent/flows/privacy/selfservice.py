"""The contact's own doors: keywords DATEN / LÖSCHEN (+ confirmation) / INFO and the
single-use self-service page behind a link (D1-D4, T3)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from konsent.domain.errors import NotFound
from konsent.domain.keywords import Intent, KeywordMatch, normalize
from konsent.flows.context import Konsent
from konsent.flows.privacy import export as privacy_export
from konsent.flows.privacy import proof_code, transparency
from konsent.flows.privacy.rights import (
    LinkGone,
    erase_contact,
    log_request,
    object_to_marketing,
    rectify_contact,
    token_digest,
)
from konsent.flows.texts import N_
from konsent.i18n import t
from konsent.store.tables import Contact, PrivacyLink, PrivacyRequest, Tenant
from konsent.store.types import utcnow

CONFIRM_HOURS = 24
PORTAL_LINK_HOURS = 24  # short: the link is also useless without the code (proof_code)
_CONFIRM_PHRASES = ("löschen ja", "loeschen ja", "delete yes", "ja löschen", "yes delete")

# What konsent says to the contact (German in locales/de/LC_MESSAGES/privacy.po).
ERASE_ASK = N_(
    "Do you want us to erase all your data (subscriptions, messages, profile)? Reply DELETE YES "
    "within 24 hours to confirm. After the erasure you will get no further messages from us, "
    "not even a confirmation."
)
ERASE_NOTHING_PENDING = N_("There is no erasure to confirm. Send DELETE first.")
EXPORT_READY = N_(
    "Your data export is ready: {link} The link works once and expires in {days} days. "
    "To erase your data, send DELETE."
)
INFO_REPLY = N_("{notice} Privacy policy: {privacy_url} Manage or download your data: {portal}")


# --- self-service links (D1, D2) -----------------------------------------------------------------


def new_portal_link(ctx: Konsent, s: Session, contact: Contact, at: datetime | None = None) -> str:
    """A single-use link to the contact's self-service privacy page."""
    at = at or utcnow()
    token = secrets.token_urlsafe(32)
    s.add(
        PrivacyLink(
            tenant_id=contact.tenant_id,
            contact_id=contact.id,
            token_hash=token_digest(token),
            created_at=at,
            expires_at=at + timedelta(hours=PORTAL_LINK_HOURS),
        )
    )
    return f"{ctx.settings.base_url.rstrip('/')}/privacy/{token}"


def portal_contact(s: Session, token: str, at: datetime | None = None, lock: bool = False) -> Contact:
    """The contact behind a portal link: 404 for unknown, 410 for used or expired ones."""
    at = at or utcnow()
    q = select(PrivacyLink).where(PrivacyLink.token_hash == token_digest(token))
    link = s.scalars(q.with_for_update() if lock else q).one_or_none()
    if link is None:
        raise NotFound()
    contact = s.get(Contact, link.contact_id)
    if link.used_at is not None or link.expires_at < at or contact is None or contact.erased_at:
        raise LinkGone()
    return contact


def use_portal_link(s: Session, token: str, at: datetime | None = None) -> None:
    s.execute(
        update(PrivacyLink)
        .where(PrivacyLink.token_hash == token_digest(token))
        .values(used_at=at or utcnow()),
        execution_options={"synchronize_session": False},
    )


# Who acted: the holder of the link who also proved, with a code sent there, to hold the contact's
# messenger (proof_code); the request log says so.
BY_CONTACT = "contact (code via messenger)"


def _proven(ctx: Konsent, s: Session, token: str, session: str) -> Contact:
    contact = portal_contact(s, token, lock=True)
    proof_code.require_proof(ctx, s, contact, token, session)
    return contact


def portal_erase(ctx: Konsent, s: Session, token: str, session: str) -> None:
    """The contact erases themselves from the self-service page, after confirming (D2); the link
    works once."""
    contact = _proven(ctx, s, token, session)
    use_portal_link(s, token)
    req = log_request(s, contact.tenant_id, "erasure", "portal", contact_id=contact.id, handled_by=BY_CONTACT)
    erase_contact(ctx, s, contact, source="portal", actor="contact")
    req.state, req.completed_at = "done", utcnow()


def portal_rectify(ctx: Konsent, s: Session, token: str, name: str, session: str) -> None:
    """The contact corrects the name we hold (D3); the link is then used up."""
    contact = _proven(ctx, s, token, session)
    rectify_contact(ctx, s, contact.tenant_id, "contact", contact.id, name=name, channel="portal")
    use_portal_link(s, token)


def portal_object(ctx: Konsent, s: Session, token: str, session: str) -> list[str]:
    contact = _proven(ctx, s, token, session)
    return object_to_marketing(ctx, s, contact.tenant_id, "contact", contact.id, channel="portal")


# --- keywords (D1, D2, T3) -----------------------------------------------------------------------


def is_erase_confirmation(text: str) -> bool:
    return normalize(text) in _CONFIRM_PHRASES


def pending_erasure(s: Session, contact: Contact, at: datetime) -> PrivacyRequest | None:
    return s.scalars(
        select(PrivacyRequest)
        .where(
            PrivacyRequest.tenant_id == contact.tenant_id,
            PrivacyRequest.contact_id == contact.id,
            PrivacyRequest.kind == "erasure",
            PrivacyRequest.state == "confirming",
            PrivacyRequest.confirm_until >= at,
        )
        .order_by(PrivacyRequest.id.desc())
    ).first()


def on_keyword(
    ctx: Konsent, s: Session, contact: Contact, match: KeywordMatch | None, text: str, at: datetime
) -> str | None:
    """Handle DATEN / LÖSCHEN (+ confirmation) / INFO; return the reply text, "" for none, None if not ours.

    The reply is sent by the caller through the normal service path (flows.inbound.reply).
    """

    tenant = s.get(Tenant, contact.tenant_id)
    assert tenant is not None
    locale = contact.locale or tenant.default_locale
    if match is None and is_erase_confirmation(text):
        req = pending_erasure(s, contact, at)
        if req is None:
            return t(locale, ERASE_NOTHING_PENDING)
        erase_contact(ctx, s, contact, source="keyword", actor="contact", at=at)
        req.state, req.completed_at, req.handled_by = "done", at, "contact"
        return ""  # nothing may be sent any more: the contact and its key are gone
    if match is None:
        return None
    if match.intent is Intent.ACCESS:
        req = log_request(s, tenant.id, "access", "keyword", contact_id=contact.id, received_at=at)
        link = privacy_export.create_export(ctx, s, contact, actor="contact", at=at)
        req.state, req.completed_at, req.handled_by = "done", at, "contact"
        return t(locale, EXPORT_READY, link=link, days=ctx.settings.export_ttl_days)
    if match.intent is Intent.ERASE:
        req = log_request(
            s, tenant.id, "erasure", "keyword", contact_id=contact.id, received_at=at, state="confirming"
        )
        req.confirm_until = at + timedelta(hours=CONFIRM_HOURS)
        return t(locale, ERASE_ASK)
    if match.intent is Intent.INFO:
        return t(
            locale,
            INFO_REPLY,
            notice=transparency.short_notice(ctx, s, tenant, locale),
            privacy_url=tenant.privacy_url or "-",
            portal=new_portal_link(ctx, s, contact, at),
        )
    return None


def portal_export(ctx: Konsent, s: Session, token: str, session: str) -> bytes:
    """The contact downloads their export from the self-service page; the link is then used up."""
    contact = _proven(ctx, s, token, session)
    use_portal_link(s, token)
    log_request(
        s, contact.tenant_id, "access", "portal", contact_id=contact.id, handled_by=BY_CONTACT, state="done"
    )
    return privacy_export.build_export(ctx, s, contact)


def link_contact(s: Session, token: str, export: bool) -> Contact:
    """The contact behind a portal or export link (404 unknown, 410 used or expired)."""
    if not export:
        return portal_contact(s, token)
    row = privacy_export.check_export_link(s, token)
    contact = s.get(Contact, row.contact_id)
    if contact is None or contact.erased_at is not None:
        raise LinkGone()
    return contact


def export_download(ctx: Konsent, s: Session, token: str, session: str) -> bytes:
    """The single-use export link of a DATEN answer, after the code proof (D1)."""
    contact = link_contact(s, token, export=True)
    proof_code.require_proof(ctx, s, contact, token, session)
    return privacy_export.download_export(ctx, s, token)
