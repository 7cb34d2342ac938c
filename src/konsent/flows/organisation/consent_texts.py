"""Consent texts per language, versioned (C3, C6, U5).

Publishing a changed text makes a new version; earlier versions are never changed, because
the proofs of the consents given for them point at them (by version and hash). Two versions
can be compared as a line diff.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from konsent.domain.errors import InvalidInput, NotFound
from konsent.flows import audit
from konsent.flows.organisation import tenants
from konsent.i18n import LOCALES
from konsent.store.tables import Consent, ConsentText, Contact, Tenant

MAX_TEXT = 5000
TOO_LONG = "a consent text has at most 5000 characters"


def check_locale(locale: str) -> str:
    if locale not in LOCALES:
        raise InvalidInput(detail="unknown language: use de or en")
    return locale


def publish(s: Session, tenant: Tenant, locale: str, text: str, *, actor: str = "system") -> ConsentText:
    """A new current version for `locale` (an unchanged text keeps the current one)."""
    check_locale(locale)
    if len(text or "") > MAX_TEXT:
        raise InvalidInput(detail=TOO_LONG)
    before = _current_or_none(s, tenant.id, locale)
    ct = tenants.set_consent_text(s, tenant, locale, text or "", author=actor)
    if before is None or before.id != ct.id:
        audit.record(s, tenant.id, actor, "consent_text.publish", f"consent_text:{locale}:{ct.version}")
    return ct


def _current_or_none(s: Session, tenant_id: int, locale: str) -> ConsentText | None:
    return s.scalars(
        select(ConsentText).where(
            ConsentText.tenant_id == tenant_id, ConsentText.locale == locale, ConsentText.current.is_(True)
        )
    ).first()


def current(s: Session, tenant_id: int, locale: str) -> ConsentText | None:
    return _current_or_none(s, tenant_id, check_locale(locale))


def versions(s: Session, tenant_id: int, locale: str) -> list[ConsentText]:
    """Every version of one language, newest first."""
    check_locale(locale)
    return list(
        s.scalars(
            select(ConsentText)
            .where(ConsentText.tenant_id == tenant_id, ConsentText.locale == locale)
            .order_by(ConsentText.version.desc())
        ).all()
    )


def get_version(s: Session, tenant_id: int, locale: str, version: int) -> ConsentText:
    check_locale(locale)
    row = s.scalars(
        select(ConsentText).where(
            ConsentText.tenant_id == tenant_id, ConsentText.locale == locale, ConsentText.version == version
        )
    ).one_or_none()
    if row is None:
        raise NotFound()
    return row


@dataclass(frozen=True)
class DiffLine:
    kind: str  # same / added / removed
    text: str


def diff(s: Session, tenant_id: int, locale: str, old: int, new: int) -> list[DiffLine]:
    """What changed between two versions, sentence by sentence."""
    a = get_version(s, tenant_id, locale, old).text
    b = get_version(s, tenant_id, locale, new).text
    out: list[DiffLine] = []
    for line in difflib.ndiff(_sentences(a), _sentences(b)):
        tag, body = line[:2], line[2:]
        if tag == "  ":
            out.append(DiffLine("same", body))
        elif tag == "- ":
            out.append(DiffLine("removed", body))
        elif tag == "+ ":
            out.append(DiffLine("added", body))
    return out


def unified_diff(s: Session, tenant_id: int, locale: str, old: int, new: int) -> str:
    a = get_version(s, tenant_id, locale, old).text
    b = get_version(s, tenant_id, locale, new).text
    return "\n".join(difflib.unified_diff(_sentences(a), _sentences(b), f"v{old}", f"v{new}", lineterm=""))


def _sentences(text: str) -> list[str]:
    """Lines, and within lines sentences, so a one-word change shows as one sentence."""
    out: list[str] = []
    for line in text.splitlines() or [""]:
        part = ""
        for ch in line:
            part += ch
            if ch in ".!?;" and part.strip():
                out.append(part.strip())
                part = ""
        if part.strip() or not line:
            out.append(part.strip())
    return out


def consents_by_version(s: Session, tenant_id: int, locale: str) -> dict[int, int]:
    """Active newsletter consents of contacts with this language, per text version."""
    default = s.scalar(select(Tenant.default_locale).where(Tenant.id == tenant_id)) or "de"
    lang = func.coalesce(Contact.locale, default)
    rows = s.execute(
        select(Consent.text_version, func.count())
        .join(Contact, (Contact.id == Consent.contact_id) & (Contact.tenant_id == Consent.tenant_id))
        .where(
            Consent.tenant_id == tenant_id,
            Consent.status == "active",
            Consent.purpose.like("newsletter:%"),
            Contact.erased_at.is_(None),
            lang == locale,
        )
        .group_by(Consent.text_version)
    ).all()
    return {int(v): int(n) for v, n in rows}


def text_view(ct: ConsentText) -> dict[str, Any]:
    return {
        "locale": ct.locale,
        "version": ct.version,
        "text": ct.text,
        "text_hash": ct.text_hash,
        "current": ct.current,
        "created_at": ct.created_at.isoformat() if ct.created_at else None,
    }
